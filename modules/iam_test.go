package modules_test

// Least privilege by resource, not only by action: TestIAMMatchesTheCode proves each role is
// granted exactly the calls its code makes; the tests here prove each grant is on what the
// role's code works on and nothing more. The policies are the ones the aggregation-stack
// composes, evaluated as a plan would with a known region, account and bucket, so what is
// checked is the JSON AWS would receive.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/liveagg/liveagg/lambdas/spotinterrupt"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/emit"
	"github.com/liveagg/liveagg/workers/metrics"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spot"
)

// oneOrMany is an IAM field that is a string or a list of strings.
type oneOrMany []string

func (o *oneOrMany) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*o = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*o = many
	return nil
}

type statement struct {
	Sid       string
	Effect    string
	Action    oneOrMany
	Resource  oneOrMany
	Condition map[string]map[string]oneOrMany
}

type policy struct {
	Statement []statement
}

// scope is what one role may act on.
type scope struct {
	role string
	// writes are the S3 key prefixes (bucket/prefix/) the role may write, delete or list;
	// reads the further objects or prefixes it may read (a trailing / for a prefix).
	writes, reads []string
	// registry is the spec registry's bucket/prefix/: no role writes there.
	registry string
	// ownInstance: the role tags only the instance it runs on (the worker); otherwise only
	// instances tagged liveagg:stack=stack (the spot function), or none (stack "").
	ownInstance bool
	stack       string
	tagKeys     []string // the tag keys (IAM patterns) the code writes
	groups      []string // Auto Scaling group ARNs it may act on
	parameters  []string // SSM parameter and Secrets Manager secret ARNs it may read
	keys        []string // KMS keys it may decrypt with, through SSM and Secrets Manager only
	tables      []string // Amazon Keyspaces keyspace and table ARNs it may use
}

// viaService is the kms:ViaService value of SSM or Secrets Manager in a region: the only ways
// a role may use a KMS key.
var viaService = regexp.MustCompile(`^(ssm|secretsmanager)\.[a-z0-9-]+\.amazonaws\.com$`)

// keyspacesSystem is the system keyspaces the Cassandra driver reads on connecting, which a
// role that signs in to Amazon Keyspaces may select from.
var keyspacesSystem = regexp.MustCompile(`^arn:aws:cassandra:[a-z0-9-]+:[0-9]{12}:/keyspace/system\*$`)

// Actions IAM cannot scope by resource: the only ones a grant on "*" may carry (besides
// PutMetricData under a namespace condition, and the Lambda service's ENI calls).
var unscopable = regexp.MustCompile(`^(ec2:Describe\w+|autoscaling:Describe\w+|cloudwatch:GetMetricData)$`)

// lambdaENI is what the Lambda service does with a function's role to put it in a VPC; AWS's
// own AWSLambdaVPCAccessExecutionRole grants it on "*".
var lambdaENI = []string{"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
	"ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}

var s3Writes = []string{"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}

func isRead(action string) bool {
	_, name, _ := strings.Cut(action, ":")
	return strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "Describe") || strings.HasPrefix(name, "List")
}

// wildcard reports whether an IAM pattern (* any run, ? one character) matches s.
func wildcard(pattern, s string) bool {
	re := "^" + strings.ReplaceAll(strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*"), `\?`, ".") + "$"
	return regexp.MustCompile(re).MatchString(s)
}

// objectPrefix turns arn:aws:s3:::bucket/prefix/* into bucket/prefix/, and an object ARN
// without a wildcard into bucket/key; ok is false for anything else.
func objectPrefix(arn string) (string, bool) {
	rest, ok := strings.CutPrefix(arn, "arn:aws:s3:::")
	if !ok || !strings.Contains(rest, "/") {
		return "", false
	}
	if p, ok := strings.CutSuffix(rest, "*"); ok {
		return p, !strings.ContainsAny(p, "*?")
	}
	return rest, !strings.ContainsAny(rest, "*?")
}

func under(p string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(q string) bool { return strings.HasPrefix(p, q) })
}

// scopeProblems lists every grant of doc beyond sc; none for a least-privilege policy.
func scopeProblems(doc policy, sc scope) []string {
	var out []string
	bad := func(s statement, format string, a ...any) {
		out = append(out, fmt.Sprintf("%s: statement %q: %s", sc.role, s.Sid, fmt.Sprintf(format, a...)))
	}
	for _, s := range doc.Statement {
		if s.Effect != "Allow" {
			continue
		}
		cond := func(op, key string) []string { return s.Condition[op][key] }
		if slices.Contains(s.Resource, "*") {
			switch {
			case !slices.ContainsFunc(s.Action, func(a string) bool { return !unscopable.MatchString(a) }):
			case slices.Equal(s.Action, []string{"cloudwatch:PutMetricData"}) && slices.Equal(cond("StringEquals", "cloudwatch:namespace"), []string{metrics.Namespace}):
			case s.Sid == "RuntimeVPC" && !slices.ContainsFunc(s.Action, func(a string) bool { return !slices.Contains(lambdaENI, a) }):
			default:
				bad(s, "%v on every resource: only calls IAM cannot scope (Describe*, GetMetricData), PutMetricData under the cloudwatch:namespace condition %q, and the Lambda VPC runtime may", s.Action, metrics.Namespace)
			}
		}
		for _, a := range s.Action {
			if strings.ContainsAny(a, "*?") {
				bad(s, "action pattern %q: grant the calls the code makes by name", a)
			}
			service, _, _ := strings.Cut(a, ":")
			switch {
			case slices.Contains(s3Writes, a) || a == "s3:GetObject":
				for _, r := range s.Resource {
					p, ok := objectPrefix(r)
					switch {
					case !ok:
						bad(s, "%s on %q: S3 objects are granted as arn:aws:s3:::bucket/prefix/* or one object", a, r)
					case !strings.Contains(strings.TrimSuffix(p, "/"), "/"):
						bad(s, "%s on %q: the whole bucket; grant a prefix", a, r)
					case a != "s3:GetObject" && (strings.HasPrefix(p, sc.registry) || strings.HasPrefix(sc.registry, p)):
						bad(s, "%s on %q: the spec registry %s is written only by whoever runs Terraform", a, r, sc.registry)
					case a != "s3:GetObject" && !under(p, sc.writes):
						bad(s, "%s on %q: outside the role's own prefixes %v", a, r, sc.writes)
					case a == "s3:GetObject" && !under(p, sc.writes) && !under(p, sc.reads):
						bad(s, "%s on %q: outside what the role reads %v %v", a, r, sc.writes, sc.reads)
					}
				}
			case a == "s3:ListBucket":
				prefixes := cond("StringLike", "s3:prefix")
				if len(prefixes) == 0 {
					bad(s, "s3:ListBucket without an s3:prefix condition lists the whole bucket")
				}
				for _, p := range prefixes {
					for _, r := range s.Resource {
						if !under(strings.TrimPrefix(r, "arn:aws:s3:::")+"/"+strings.TrimSuffix(p, "*"), sc.writes) {
							bad(s, "s3:ListBucket of %s under %q: outside the role's own prefixes %v", r, p, sc.writes)
						}
					}
				}
			case service == "ec2" && !isRead(a) && s.Sid != "RuntimeVPC":
				for _, r := range s.Resource {
					if !strings.HasPrefix(r, "arn:aws:ec2:") || !strings.Contains(r, ":instance/") {
						bad(s, "%s on %q: only instances", a, r)
					}
				}
				switch {
				case sc.ownInstance && !slices.Equal(cond("StringEquals", "aws:ARN"), []string{"${ec2:SourceInstanceARN}"}):
					bad(s, "%s without the condition aws:ARN = ${ec2:SourceInstanceARN}: the worker may tag other instances", a)
				case !sc.ownInstance && (sc.stack == "" || !slices.Equal(cond("StringEquals", "aws:ResourceTag/liveagg:stack"), []string{sc.stack})):
					bad(s, "%s without the condition aws:ResourceTag/liveagg:stack = %q: the role may tag instances of other stacks", a, sc.stack)
				}
				if a == "ec2:CreateTags" {
					keys := append(cond("ForAllValues:StringLike", "aws:TagKeys"), cond("ForAllValues:StringEquals", "aws:TagKeys")...)
					if len(keys) == 0 {
						bad(s, "ec2:CreateTags without a ForAllValues aws:TagKeys condition: the role may rewrite any tag, liveagg:stack included")
					}
					for _, k := range keys {
						if !slices.Contains(sc.tagKeys, k) {
							bad(s, "ec2:CreateTags of tag keys %q: the code writes only %v", k, sc.tagKeys)
						}
					}
				}
			case service == "autoscaling" && !isRead(a):
				if len(s.Resource) == 0 {
					bad(s, "%s on nothing", a)
				}
				for _, r := range s.Resource {
					if !slices.Contains(sc.groups, r) {
						bad(s, "%s on %q: not one of the role's groups %v", a, r, sc.groups)
					}
				}
			case service == "ssm" || service == "secretsmanager":
				for _, r := range s.Resource {
					if !slices.Contains(sc.parameters, r) {
						bad(s, "%s on %q: not a configured parameter or secret %v", a, r, sc.parameters)
					}
				}
			case service == "kms":
				for _, r := range s.Resource {
					if !slices.Contains(sc.keys, r) {
						bad(s, "%s on %q: not the configured key %v", a, r, sc.keys)
					}
				}
				via := cond("StringEquals", "kms:ViaService")
				if len(via) == 0 || slices.ContainsFunc(via, func(v string) bool { return !viaService.MatchString(v) }) {
					bad(s, "%s with kms:ViaService %v: the key may be used only through SSM or Secrets Manager", a, via)
				}
			case service == "cassandra":
				for _, r := range s.Resource {
					if !slices.Contains(sc.tables, r) && !(a == "cassandra:Select" && keyspacesSystem.MatchString(r)) {
						bad(s, "%s on %q: not one of the spec's keyspaces or tables %v", a, r, sc.tables)
					}
				}
			case a == "cloudwatch:PutMetricData":
				if !slices.Equal(cond("StringEquals", "cloudwatch:namespace"), []string{metrics.Namespace}) {
					bad(s, "cloudwatch:PutMetricData without the condition cloudwatch:namespace = %q", metrics.Namespace)
				}
			}
		}
	}
	return out
}

// The stack the tests plan: two fleets, one of which exports to S3 in another bucket and in
// the stack's own bucket.
const (
	testStack   = "indoor"
	testBucket  = "indoor-bucket"
	testRegion  = "eu-west-1"
	testAccount = "123456789012"
	testToken   = "/liveagg/indoor/admin-token"
	testBinary  = "artifacts/liveagg-arm64"
)

func testSpecs(t *testing.T, orgOutputs ...string) map[string]string {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	org := read("../examples/indoor-location/level3-org.yaml")
	if !strings.Contains(org, "\noutputs:\n") || strings.Contains(org[strings.Index(org, "\noutputs:\n")+1:], "\n\n") {
		t.Fatal("level3-org.yaml no longer ends with its outputs list")
	}
	for _, url := range orgOutputs {
		org += "  - type: s3\n    url: " + url + "\n"
	}
	return map[string]string{"l1": read("../examples/indoor-location/level1.yaml"), "org": org}
}

// planStack plans modules/aggregation-stack as a root with the given specs, a known region,
// account and bucket, and returns the run.
func planStack(t *testing.T, specs map[string]string) *planRun {
	t.Helper()
	return planStackWith(t, specs, nil)
}

// planStackWith is planStack with further values for the stack's variables.
func planStackWith(t *testing.T, specs map[string]string, extra map[string]cty.Value) *planRun {
	t.Helper()
	cfg := loadConfig(t, "aggregation-stack")
	obj := func(m map[string]cty.Value) cty.Value { return cty.ObjectVal(m) }
	str := cty.StringVal
	run := &planRun{root: cfg, args: map[string]map[string][]cty.Value{}, known: map[string]cty.Value{
		"data.aws_region.current":          obj(map[string]cty.Value{"region": str(testRegion)}),
		"data.aws_caller_identity.current": obj(map[string]cty.Value{"account_id": str(testAccount)}),
		"aws_s3_bucket.this":               obj(map[string]cty.Value{"id": str(testBucket), "arn": str("arn:aws:s3:::" + testBucket)}),
	}}
	specVals := map[string]cty.Value{}
	for k, doc := range specs {
		specVals[k] = str(doc)
	}
	fleet := func(rate int64) cty.Value {
		return obj(map[string]cty.Value{"peak_records_per_second": cty.NumberIntVal(rate), "live_series": cty.NumberIntVal(1000)})
	}
	topic := obj(map[string]cty.Value{"partitions": cty.NumberIntVal(6)})
	given := map[string]cty.Value{
		"name": str(testStack), "bucket_name": str(testBucket),
		"network": obj(map[string]cty.Value{"vpc_id": str("vpc-1"), "vpc_cidr": str("10.0.0.0/16"), "subnet_ids": strs("subnet-a", "subnet-b")}),
		"kafka":   obj(map[string]cty.Value{"brokers": strs("b-1:9098")}),
		"topics":  obj(map[string]cty.Value{"location-raw": topic, "location-partials": topic, "location-partials-org": topic}),
		"specs":   obj(specVals),
		"fleets":  obj(map[string]cty.Value{"l1": fleet(20000), "org": fleet(500)}),
		"ami_id":  str("ami-1"), "binary_location": str("s3://" + testBinary), "lambda_dist_dir": str("../lambdas/dist"),
		"admin_token_parameter": str(testToken),
	}
	for k, v := range extra {
		given[k] = v
	}
	root := newInstance(run, cfg, "", run.inputs(cfg, given, hcl.Range{Filename: "aggregation-stack"}))
	root.check()
	return run
}

func policies(t *testing.T, run *planRun, node string) []policy {
	t.Helper()
	var out []policy
	for _, v := range run.args[node]["policy"] {
		v, _ = v.UnmarkDeep()
		if !v.IsWhollyKnown() || v.Type() != cty.String {
			t.Fatalf("%s: the policy is not known at plan time", node)
		}
		var p policy
		if err := json.Unmarshal([]byte(v.AsString()), &p); err != nil {
			t.Fatalf("%s: %v\n%s", node, err, v.AsString())
		}
		out = append(out, p)
	}
	return out
}

func find(p policy, sid string) (statement, bool) {
	i := slices.IndexFunc(p.Statement, func(s statement) bool { return s.Sid == sid })
	if i < 0 {
		return statement{}, false
	}
	return p.Statement[i], true
}

// recordingS3 is an S3 client that remembers the key of every call and answers as an empty
// bucket would.
type recordingS3 struct {
	mu             sync.Mutex
	reads, writes  []string
	listedPrefixes []string
}

func (r *recordingS3) note(list *[]string, bucket, key *string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, aws.ToString(bucket)+"/"+aws.ToString(key))
}

func (r *recordingS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	r.note(&r.reads, in.Bucket, in.Key)
	return nil, &s3types.NoSuchKey{}
}

func (r *recordingS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	r.note(&r.writes, in.Bucket, in.Key)
	return &s3.PutObjectOutput{ETag: aws.String(`"1"`)}, nil
}

func (r *recordingS3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	r.note(&r.writes, in.Bucket, in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

func (r *recordingS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	r.note(&r.listedPrefixes, in.Bucket, in.Prefix)
	return &s3.ListObjectsV2Output{}, nil
}

func (r *recordingS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	r.note(&r.writes, in.Bucket, in.Key)
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String("u")}, nil
}

func (r *recordingS3) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	r.note(&r.writes, in.Bucket, in.Key)
	return &s3.UploadPartOutput{ETag: aws.String(`"p"`)}, nil
}

func (r *recordingS3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	r.note(&r.writes, in.Bucket, in.Key)
	return &s3.CompleteMultipartUploadOutput{ETag: aws.String(`"1"`)}, nil
}

func (r *recordingS3) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	r.note(&r.writes, in.Bucket, in.Key)
	return &s3.AbortMultipartUploadOutput{}, nil
}

// codeKeys runs the worker's checkpoint store and S3 sink against a recording client: the
// bucket/key of every object they read and write for one partition of the spec, and the
// prefixes the store lists.
func codeKeys(t *testing.T, specName, topic, checkpoints string, outputs []string) (reads, writes, lists []string) {
	t.Helper()
	rec := &recordingS3{}
	st, err := checkpoint.Open(checkpoints, checkpoint.WithS3Client(rec))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lease, err := st.Claim(ctx, checkpoint.Key{Spec: specName, Topic: topic, Partition: 3}, "w1")
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(1); off <= 3; off++ { // the third save removes the first state
		if _, err := lease.Save(ctx, checkpoint.Checkpoint{Offset: off, State: []byte("state")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Partitions(ctx, specName, topic); err != nil {
		t.Fatal(err)
	}
	for _, o := range outputs {
		s, err := sink.NewS3(rec, o)
		if err != nil {
			t.Fatal(err)
		}
		key := s.ObjectKey(&emit.Window{Spec: specName, Topic: topic, Partition: 3, Size: 60000, Start: 1767225600000})
		u, err := url.Parse(o)
		if err != nil {
			t.Fatal(err)
		}
		rec.writes = append(rec.writes, u.Host+"/"+key)
	}
	return rec.reads, rec.writes, rec.listedPrefixes
}

// granted says whether a statement of p with action grants it on bucket/key.
func granted(p policy, action, bucketKey string) bool {
	return slices.ContainsFunc(p.Statement, func(s statement) bool {
		return s.Effect == "Allow" && slices.Contains(s.Action, action) &&
			slices.ContainsFunc(s.Resource, func(r string) bool { return wildcard(r, "arn:aws:s3:::"+bucketKey) })
	})
}

// TestIAMScopedByResource: every role of the stack is granted its calls only on its own
// resources. Workers write only their spec's checkpoints and its S3 outputs, and read the spec
// registry and the binary; no role writes the spec registry; the spot function tags (only
// with its claim and drained tags) only instances of its stack and acts only on its stack's
// groups; each autoscaler sets the capacity of its own group only; parameters are read by ARN;
// metrics are published only to the code's namespace. The grants are also wide enough: the
// keys the checkpoint store and the S3 sink use for a partition of the spec are all allowed.
func TestIAMScopedByResource(t *testing.T) {
	exportsOther, exportsOwn := "s3://exports-bucket/rollups", "s3://"+testBucket+"/exports/"
	specs := testSpecs(t, exportsOther, exportsOwn)
	run := planStack(t, specs)
	for _, p := range run.problems {
		t.Error(p)
	}
	registry := testBucket + "/specs/"
	token := "arn:aws:ssm:" + testRegion + ":" + testAccount + ":parameter" + testToken
	group := func(fleet string) string {
		return "arn:aws:autoscaling:" + testRegion + ":" + testAccount + ":autoScalingGroup:*:autoScalingGroupName/" + testStack + "-" + fleet
	}
	type fleetSpec struct{ name, topic string }
	fleets := map[string]fleetSpec{}
	for k, doc := range specs {
		fleets[k] = fleetSpec{
			name:  regexp.MustCompile(`(?m)^name: (\S+)$`).FindStringSubmatch(doc)[1],
			topic: regexp.MustCompile(`(?m)^  topic: (\S+)$`).FindStringSubmatch(doc)[1],
		}
	}

	// Workers: one policy per fleet, told apart by their checkpoint prefix.
	workers := policies(t, run, "module.workers.aws_iam_role_policy.this")
	if len(workers) != len(fleets) {
		t.Fatalf("%d worker policies for %d fleets", len(workers), len(fleets))
	}
	seen := map[string]bool{}
	for _, p := range workers {
		cp, ok := find(p, "CodeOwnCheckpoints")
		if !ok || len(cp.Resource) != 1 {
			t.Fatalf("worker policy without one CodeOwnCheckpoints resource: %+v", p)
		}
		var fleet string
		for k, f := range fleets {
			if cp.Resource[0] == "arn:aws:s3:::"+testBucket+"/checkpoints/"+f.name+"/*" {
				fleet = k
			}
		}
		if fleet == "" || seen[fleet] {
			t.Fatalf("worker checkpoint grant %q is no fleet's own, or a second one's", cp.Resource[0])
		}
		seen[fleet] = true
		f := fleets[fleet]
		var outputs []string
		writes := []string{testBucket + "/checkpoints/" + f.name + "/"}
		if fleet == "org" {
			outputs = []string{exportsOther, exportsOwn}
			writes = append(writes, "exports-bucket/rollups/"+f.name+"/", testBucket+"/exports/"+f.name+"/")
		}
		sc := scope{role: "worker " + fleet, writes: writes, reads: []string{registry, testBinary}, registry: registry,
			ownInstance: true, tagKeys: []string{spot.AdminEndpointTag, spot.DrainedTag}, parameters: []string{token}}
		for _, p := range scopeProblems(p, sc) {
			t.Error(p)
		}
		// What the code does is allowed: no grant is narrower than the keys it uses.
		reads, codeWrites, lists := codeKeys(t, f.name, f.topic, "s3://"+testBucket+"/checkpoints", outputs)
		for _, k := range reads {
			if !granted(p, "s3:GetObject", k) {
				t.Errorf("worker %s: the checkpoint store reads %s, which the policy does not allow", fleet, k)
			}
		}
		for _, k := range codeWrites {
			if !granted(p, "s3:PutObject", k) {
				t.Errorf("worker %s: the code writes %s, which the policy does not allow", fleet, k)
			}
		}
		lb, _ := find(p, "CodeListOwnCheckpoints")
		for _, k := range lists {
			_, prefix, _ := strings.Cut(k, "/")
			if !slices.ContainsFunc(lb.Condition["StringLike"]["s3:prefix"], func(c string) bool { return wildcard(c, prefix) }) {
				t.Errorf("worker %s: the checkpoint store lists %s, which the policy does not allow", fleet, k)
			}
		}
		if !granted(p, "s3:GetObject", registry+f.name+".yaml") || !granted(p, "s3:GetObject", testBinary) {
			t.Errorf("worker %s: may not read its spec or its binary", fleet)
		}
	}

	// Control functions: the stack's spot function and an autoscaler per fleet.
	control := policies(t, run, "module.control.aws_iam_role_policy.this")
	var all []string
	for k := range fleets {
		all = append(all, group(k))
	}
	sort.Strings(all)
	spots, scalers := 0, map[string]bool{}
	for _, p := range control {
		if s, ok := find(p, "CodeScale"); ok {
			fleet := ""
			for k := range fleets {
				if slices.Equal(s.Resource, []string{group(k)}) {
					fleet = k
				}
			}
			if fleet == "" || scalers[fleet] {
				t.Errorf("autoscaler scales %v: not exactly one fleet's own group", s.Resource)
				continue
			}
			scalers[fleet] = true
			for _, p := range scopeProblems(p, scope{role: "autoscaler " + fleet, registry: registry, groups: []string{group(fleet)}}) {
				t.Error(p)
			}
			continue
		}
		spots++
		g, _ := find(p, "CodeGroups")
		if got := slices.Sorted(slices.Values(g.Resource)); !slices.Equal(got, all) {
			t.Errorf("the spot function acts on groups %v, want the stack's %v", got, all)
		}
		sc := scope{role: "spotinterrupt", registry: registry, stack: testStack, groups: all, parameters: []string{token},
			tagKeys: []string{spotinterrupt.TagClaimPrefix + "*", spotinterrupt.TagDrained}}
		for _, p := range scopeProblems(p, sc) {
			t.Error(p)
		}
	}
	if spots != 1 || len(scalers) != len(fleets) {
		t.Errorf("%d spot functions and %d autoscalers for %d fleets; want one spot function for the stack and one autoscaler per fleet", spots, len(scalers), len(fleets))
	}
}

// TestWorkersNeverWriteSpecs: a spec whose S3 output points into the spec registry fails the
// plan instead of giving its workers write access to every fleet's spec.
func TestWorkersNeverWriteSpecs(t *testing.T) {
	for _, url := range []string{"s3://" + testBucket + "/specs", "s3://" + testBucket + "/specs/exports", "s3://" + testBucket} {
		t.Run(url, func(t *testing.T) {
			specs := testSpecs(t, url)
			if url == "s3://"+testBucket {
				// The bucket's root: the sink writes under <spec name>/, which is only the
				// registry when the spec is named after it.
				specs["org"] = strings.Replace(specs["org"], "name: indoor-l3-org", "name: specs", 1)
			}
			run := planStack(t, specs)
			if !slices.ContainsFunc(run.problems, func(p string) bool { return strings.Contains(p, "would write where the specs are") }) {
				t.Errorf("an s3 output at %s plans without complaint: %v", url, run.problems)
			}
		})
	}
}

// TestIAMScopingCatches: the scoping check fails the grants least privilege rules out, each
// of them a statement the policies had or could slip back to.
func TestIAMScopingCatches(t *testing.T) {
	worker := scope{role: "worker", writes: []string{"b/checkpoints/s/"}, reads: []string{"b/specs/", "art/bin"}, registry: "b/specs/",
		ownInstance: true, tagKeys: []string{spot.AdminEndpointTag, spot.DrainedTag}, parameters: []string{"arn:aws:ssm:r:1:parameter/t"},
		keys: []string{"arn:aws:kms:r:1:key/k"}, tables: []string{"arn:aws:cassandra:r:123456789012:/keyspace/ks/table/t"}}
	lambda := scope{role: "spotinterrupt", registry: "b/specs/", stack: "st", groups: []string{"arn:g1"}, parameters: []string{"arn:aws:ssm:r:1:parameter/t"},
		tagKeys: []string{spotinterrupt.TagClaimPrefix + "*", spotinterrupt.TagDrained}}
	for _, tc := range []struct {
		name, statement string
		sc              scope
		want            string
	}{
		{"writes on the whole bucket", `{"Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], "Resource": ["arn:aws:s3:::b/*"]}`, worker, "the whole bucket"},
		{"lists the whole bucket", `{"Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::b"]}`, worker, "without an s3:prefix condition"},
		{"writes the registry", `{"Action": ["s3:PutObject"], "Resource": "arn:aws:s3:::b/specs/*"}`, worker, "spec registry"},
		{"writes another fleet's checkpoints", `{"Action": ["s3:PutObject"], "Resource": "arn:aws:s3:::b/checkpoints/*"}`, worker, "outside the role's own prefixes"},
		{"reads another bucket", `{"Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::other/x/*"}`, worker, "outside what the role reads"},
		{"tags other instances", `{"Action": ["ec2:CreateTags"], "Resource": "arn:aws:ec2:*:*:instance/*", "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["liveagg:admin-endpoint"]}}}`, worker, "may tag other instances"},
		{"tags any instance", `{"Action": ["ec2:CreateTags"], "Resource": "*"}`, lambda, "on every resource"},
		{"tags another stack", `{"Action": ["ec2:CreateTags"], "Resource": "arn:aws:ec2:*:*:instance/*", "Condition": {"StringEquals": {"aws:ResourceTag/liveagg:stack": "other"}, "ForAllValues:StringLike": {"aws:TagKeys": ["liveagg:drained"]}}}`, lambda, "other stacks"},
		{"tags with any key", `{"Action": ["ec2:CreateTags"], "Resource": "arn:aws:ec2:*:*:instance/*", "Condition": {"StringEquals": {"aws:ResourceTag/liveagg:stack": "st"}}}`, lambda, "may rewrite any tag"},
		{"tags liveagg:stack", `{"Action": ["ec2:CreateTags"], "Resource": "arn:aws:ec2:*:*:instance/*", "Condition": {"StringEquals": {"aws:ResourceTag/liveagg:stack": "st"}, "ForAllValues:StringLike": {"aws:TagKeys": ["liveagg:*"]}}}`, lambda, "the code writes only"},
		{"terminates in any group", `{"Action": ["autoscaling:TerminateInstanceInAutoScalingGroup"], "Resource": "*"}`, lambda, "on every resource"},
		{"scales another group", `{"Action": ["autoscaling:SetDesiredCapacity"], "Resource": "arn:g2"}`, lambda, "not one of the role's groups"},
		{"reads every parameter", `{"Action": ["ssm:GetParameter"], "Resource": "arn:aws:ssm:r:1:parameter/*"}`, lambda, "not a configured parameter"},
		{"reads every secret", `{"Action": ["secretsmanager:GetSecretValue"], "Resource": "arn:aws:secretsmanager:r:1:secret:*"}`, worker, "not a configured parameter or secret"},
		{"decrypts with any key", `{"Action": ["kms:Decrypt"], "Resource": "*"}`, worker, "on every resource"},
		{"decrypts with another key", `{"Action": ["kms:Decrypt"], "Resource": "arn:aws:kms:r:1:key/other", "Condition": {"StringEquals": {"kms:ViaService": ["ssm.r.amazonaws.com"]}}}`, worker, "not the configured key"},
		{"decrypts directly", `{"Action": ["kms:Decrypt"], "Resource": "arn:aws:kms:r:1:key/k"}`, worker, "only through SSM or Secrets Manager"},
		{"decrypts through another service", `{"Action": ["kms:Decrypt"], "Resource": "arn:aws:kms:r:1:key/k", "Condition": {"StringEquals": {"kms:ViaService": ["s3.r.amazonaws.com"]}}}`, worker, "only through SSM or Secrets Manager"},
		{"writes every keyspace", `{"Action": ["cassandra:Modify"], "Resource": "arn:aws:cassandra:r:123456789012:/keyspace/*"}`, worker, "not one of the spec's keyspaces or tables"},
		{"writes the system keyspaces", `{"Action": ["cassandra:Modify"], "Resource": "arn:aws:cassandra:r:123456789012:/keyspace/system*"}`, worker, "not one of the spec's keyspaces or tables"},
		{"metrics in any namespace", `{"Action": ["cloudwatch:PutMetricData"], "Resource": "*"}`, lambda, "on every resource"},
		{"metrics in another namespace", `{"Action": ["cloudwatch:PutMetricData"], "Resource": "*", "Condition": {"StringEquals": {"cloudwatch:namespace": "other"}}}`, lambda, "on every resource"},
		{"logs anywhere", `{"Sid": "RuntimeLogs", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}`, lambda, "on every resource"},
		{"an action pattern", `{"Action": ["s3:Put*"], "Resource": "arn:aws:s3:::b/checkpoints/s/*"}`, worker, "action pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s statement
			if err := json.Unmarshal([]byte(tc.statement), &s); err != nil {
				t.Fatal(err)
			}
			s.Effect = "Allow"
			got := scopeProblems(policy{Statement: []statement{s}}, tc.sc)
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("want a problem with %q, got %q", tc.want, got)
			}
		})
	}
}
