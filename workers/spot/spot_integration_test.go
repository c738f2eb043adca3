//go:build integration

package spot

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

func TestPublishEndpointTagsInstance(t *testing.T) {
	cfg := testenv.AWSConfig(t)
	ctx := testenv.Context(t, time.Minute)
	ec := ec2.NewFromConfig(cfg)
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("describe images: %v", err)
	}
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceType: ec2types.InstanceTypeM6gLarge})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	if err := PublishEndpoint(ctx, ec, id, "http://10.0.0.7:7070"); err != nil {
		t.Fatal(err)
	}
	out, err := ec.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{
		{Name: aws.String("resource-id"), Values: []string{id}}, {Name: aws.String("key"), Values: []string{AdminEndpointTag}}}})
	if err != nil || len(out.Tags) != 1 || aws.ToString(out.Tags[0].Value) != "http://10.0.0.7:7070" {
		t.Fatalf("tags = %+v, %v", out.Tags, err)
	}
}

func TestTokenFromSecureString(t *testing.T) {
	cl := ssm.NewFromConfig(testenv.AWSConfig(t))
	ctx := testenv.Context(t, time.Minute)
	name := "/" + testenv.Name(t, "liveagg") + "/admin-token"
	if _, err := cl.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(" s3cret\n"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	tok, err := Token(ctx, cl, name)
	if err != nil || tok != "s3cret" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	if _, err := Token(ctx, cl, name+"-missing"); err == nil {
		t.Fatal("a missing parameter gave a token")
	}
}
