//go:build integration

package worker_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/liveagg/liveagg/infra/local/testenv"
	"github.com/liveagg/liveagg/workers/spot"
)

// TestSpotNoticeDrainsWorker runs a worker as it runs on EC2: it learns its instance from
// instance metadata (a stand-in serving IMDSv2 on loopback), tags that instance in EC2 (moto)
// with its admin endpoint, and, when metadata starts answering with a spot interruption notice,
// drains (checkpoints, leaves the group) and exits by itself.
func TestSpotNoticeDrainsWorker(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	awsEP := testenv.AWSEndpoint(t)
	ctx := testenv.Context(t, 3*time.Minute)
	name := testenv.Name(t, "notice")
	topic := name + "-raw"

	ec := ec2.NewFromConfig(testenv.AWSConfig(t))
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("describe images: %v", err)
	}
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, MinCount: aws.Int32(1),
		MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceTypeM6gLarge})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	// The private address is what the worker would advertise; nothing here connects to it.
	md := testenv.NewIMDS(t, map[string]string{"instance-id": id, "local-ipv4": "10.1.2.3"})

	cl := newTopic(t, brokers, topic, 2)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(`{"k":"a","t":1767225600000}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	specPath := countSpec(t, dir, name, topic)
	tokenPath := writeFile(t, dir, "token", "tok")
	port := testenv.FreePort(t)
	cfgPath := writeFile(t, dir, "worker.yaml", `
spec: %s
kafka: {brokers: [%s]}
checkpoint: {location: "file://%s", interval: 1s}
aws: {endpoint: %q}
admin: {listen: "127.0.0.1:%d", token_file: %q, on_ec2: true}
`, specPath, strings.Join(brokers, ","), filepath.Join(dir, "ckpt"), awsEP, port, tokenPath)
	w := startWorker(t, dir, cfgPath, "w", "AWS_EC2_METADATA_SERVICE_ENDPOINT="+md.URL, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing")
	done := w.Done

	// The worker publishes its endpoint on its instance.
	want := fmt.Sprintf("http://10.1.2.3:%d", port)
	for {
		out, err := ec.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{
			{Name: aws.String("resource-id"), Values: []string{id}}, {Name: aws.String("key"), Values: []string{spot.AdminEndpointTag}}}})
		if err == nil && len(out.Tags) == 1 && aws.ToString(out.Tags[0].Value) == want {
			break
		}
		select {
		case <-done:
			t.Fatalf("worker exited before tagging its instance:\n%s", w.Log())
		case <-ctx.Done():
			t.Fatalf("instance never tagged with %s (last %+v, %v)", want, out, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// The notice comes once the worker owns its partitions, so that the drain has a
	// checkpoint to write (the group may take a while to assign them on a loaded machine).
	for !strings.Contains(w.Log(), `"msg":"partition restored"`) {
		select {
		case <-done:
			t.Fatalf("worker exited before owning a partition:\n%s", w.Log())
		case <-ctx.Done():
			t.Fatalf("worker never restored a partition:\n%s", w.Log())
		case <-time.After(200 * time.Millisecond):
		}
	}

	// Two minutes' notice: the worker drains itself and exits.
	md.Set("spot/instance-action", fmt.Sprintf(`{"action":"terminate","time":%q}`, time.Now().Add(2*time.Minute).UTC().Format(time.RFC3339)))
	start := time.Now()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("worker did not drain on the spot notice")
	}
	for _, want := range []string{"spot interruption notice: draining", `"checkpointed":true`, "drained"} {
		if !strings.Contains(w.Log(), want) {
			t.Errorf("log lacks %q:\n%s", want, w.Log())
		}
	}
	if code := w.Cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("exit %d after a drain for a spot notice, want 3 (drained: do not restart)", code)
	}
	// The instance says it drained, so the lambda that comes later does not count a failure.
	tags, err := ec.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{
		{Name: aws.String("resource-id"), Values: []string{id}}, {Name: aws.String("key"), Values: []string{spot.DrainedTag}}}})
	if err != nil || len(tags.Tags) != 1 || !strings.HasPrefix(aws.ToString(tags.Tags[0].Value), "self:") {
		t.Errorf("instance not tagged %s=self:...: %+v, %v", spot.DrainedTag, tags, err)
	}
	t.Logf("drained and exited %.1f s after the notice appeared", time.Since(start).Seconds())
}
