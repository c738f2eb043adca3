package testenv

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// AMI returns an image moto knows, for launch templates and instances.
func AMI(t testing.TB, ctx context.Context, ec *ec2.Client) string {
	t.Helper()
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("describe images: %v", err)
	}
	return aws.ToString(imgs.Images[0].ImageId)
}

// AutoScalingGroup creates a launch template and an Auto Scaling group named name in moto,
// deleted when the test ends, and returns its instance ids (moto launches them at once).
func AutoScalingGroup(t testing.TB, ctx context.Context, ec *ec2.Client, as *autoscaling.Client, name string, minSize, maxSize, desired int32) []string {
	t.Helper()
	// The name is the test's own (testenv.Name): if it is taken, an SDK retry of this very
	// request found the first attempt done (moto answered too late), and the template (and,
	// below, the group) is ours.
	if _, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(name),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(AMI(t, ctx, ec)), InstanceType: ec2types.InstanceTypeM6gLarge}}); err != nil &&
		!strings.Contains(err.Error(), "InvalidLaunchTemplateName.AlreadyExistsException") {
		t.Fatal(err)
	}
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name), MinSize: aws.Int32(minSize), MaxSize: aws.Int32(maxSize), DesiredCapacity: aws.Int32(desired),
		AvailabilityZones: []string{Region + "a"},
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(name), Version: aws.String("$Latest")},
	}); err != nil && !alreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = as.DeleteAutoScalingGroup(context.Background(), &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String(name), ForceDelete: aws.Bool(true)})
	})
	out, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("describe group %s: %v", name, err)
	}
	var ids []string
	for _, i := range out.AutoScalingGroups[0].Instances {
		ids = append(ids, aws.ToString(i.InstanceId))
	}
	return ids
}

// alreadyExists reports whether err is the Auto Scaling API's AlreadyExists error. (The moto in
// use today answers a repeated CreateAutoScalingGroup with success; AWS, and moto versions that
// follow it, answer AlreadyExists.)
func alreadyExists(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "AlreadyExists"
}
