//go:build integration

package tfprovider

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// factories serve the provider in-process to the OpenTofu binary infra/local builds.
var factories = map[string]func() (tfprotov6.ProviderServer, error){
	"liveagg": providerserver.NewProtocol6WithError(New("test")()),
}

// accEnv points the acceptance tests at OpenTofu and the local services: the provider reads
// the same environment variables users set. The acceptance tests always run under the
// integration tag; a missing service fails them rather than skipping.
func accEnv(t *testing.T) (bucket string) {
	t.Helper()
	t.Setenv("TF_ACC", "1")
	t.Setenv("TF_ACC_TERRAFORM_PATH", testenv.Tofu(t))
	t.Setenv("TF_ACC_PROVIDER_HOST", "registry.opentofu.org")
	t.Setenv("TF_ACC_PROVIDER_NAMESPACE", "hashicorp")
	t.Setenv("LIVEAGG_KAFKA_BROKERS", strings.Join(testenv.KafkaBrokers(t), ","))
	t.Setenv("LIVEAGG_CASSANDRA_HOSTS", strings.Join(testenv.CassandraHosts(t), ","))
	t.Setenv("LIVEAGG_AWS_ENDPOINT", testenv.AWSEndpoint(t))
	t.Setenv("AWS_REGION", testenv.Region)
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		t.Setenv("AWS_ACCESS_KEY_ID", "testing")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	}
	bucket = testenv.Name(t, "specs")
	cl := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := cl.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LIVEAGG_SPEC_REGISTRY", "s3://"+bucket+"/specs")
	return bucket
}
