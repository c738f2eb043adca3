// Package modules_test checks the Terraform modules against the code they deploy: no AWS
// account or AWS provider is available here, so what can be checked without one is checked by
// parsing the modules with hashicorp/hcl and the Go code with go/parser.
package modules_test

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/liveagg/liveagg/workers/cli"
	"github.com/liveagg/liveagg/workers/cwpub"
	"github.com/liveagg/liveagg/workers/metrics"

	"github.com/liveagg/liveagg/workers/config"
)

// roots are every Terraform configuration in the repository.
var roots = []string{"checkpoint-store", "spot-workers", "control-lambdas", "monitoring", "pipeline", "aggregation-stack",
	"../infra/aws", "../examples/indoor-location/terraform"}

func TestVariablesAndOutputsAreTypedAndDescribed(t *testing.T) {
	p := hclparse.NewParser()
	for _, dir := range roots {
		files, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
		if len(files) == 0 {
			t.Errorf("%s: no .tf files", dir)
		}
		for _, f := range files {
			file, diags := p.ParseHCLFile(f)
			if diags.HasErrors() {
				t.Fatalf("%s: %v", f, diags)
			}
			body := file.Body.(*hclsyntax.Body)
			for _, b := range body.Blocks {
				switch b.Type {
				case "variable":
					if _, ok := b.Body.Attributes["type"]; !ok {
						t.Errorf("%s: variable %q has no type", f, b.Labels[0])
					}
					if d := literal(t, b.Body.Attributes["description"]); len(d) < 10 {
						t.Errorf("%s: variable %q has no real description", f, b.Labels[0])
					}
				case "output":
					if d := literal(t, b.Body.Attributes["description"]); len(d) < 10 {
						t.Errorf("%s: output %q has no real description", f, b.Labels[0])
					}
				}
			}
		}
		for _, want := range []string{"main.tf", "variables.tf", "outputs.tf"} {
			if _, err := os.Stat(filepath.Join(dir, want)); err != nil && !strings.HasPrefix(dir, "../examples") {
				t.Errorf("%s lacks %s (standard module structure)", dir, want)
			}
		}
	}
}

func literal(t *testing.T, a *hclsyntax.Attribute) string {
	if a == nil {
		return ""
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// render evaluates a templatefile template the way Terraform does (interpolations,
// directives, jsonencode), with vars.
func render(t *testing.T, path string, vars map[string]cty.Value) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	expr, diags := hclsyntax.ParseTemplate(src, path, hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		t.Fatalf("%s: %v", path, diags)
	}
	v, diags := expr.Value(&hcl.EvalContext{Variables: vars, Functions: planFunctions(false)})
	if diags.HasErrors() {
		t.Fatalf("%s: %v", path, diags)
	}
	return v.AsString()
}

func strs(ss ...string) cty.Value {
	var vs []cty.Value
	for _, s := range ss {
		vs = append(vs, cty.StringVal(s))
	}
	return cty.ListVal(vs)
}

// TestUserDataRendersAWorkerConfig: the config the spot-workers module writes on each instance
// is one the worker's own loader accepts (TestWorkerSecretsEveryCombination covers the
// Cassandra and admin TLS settings).
func TestUserDataRendersAWorkerConfig(t *testing.T) {
	// The loader lets LIVEAGG_* variables override the file; here the file alone counts.
	clearConfigEnv(t)
	run, m := planWorkers(t, map[string]cty.Value{"name": cty.StringVal("indoor-l1"), "spec_location": cty.StringVal("s3://" + testBucket + "/specs/indoor-l1.yaml")})
	for _, p := range run.problems {
		t.Fatal(p)
	}
	ud := userData(t, run.args["aws_launch_template.this"]["user_data"][0])
	cfg := workerConfigIn(t, ud)
	if out, _ := m.local("worker_config").UnmarkDeep(); !out.RawEquals(cty.StringVal(cfg)) {
		t.Fatalf("the user data's config is not the worker_config output:\n%s", cfg)
	}
	c, err := config.Parse([]byte(cfg))
	if err != nil {
		t.Fatalf("rendered worker config refused: %v\n%s", err, cfg)
	}
	if c.Spec != "s3://"+testBucket+"/specs/indoor-l1.yaml" || len(c.Kafka.Brokers) != 1 || c.Kafka.SASL.Mechanism != "aws-msk-iam" || !c.Kafka.TLS.Enabled ||
		c.Admin.TokenSSMParameter != testToken || !c.Admin.OnEC2 || c.Admin.TLS.Enabled() || c.Metrics.AutoScalingGroup != "indoor-l1" || c.Metrics.CloudWatchInterval == 0 ||
		c.Sinks.Cassandra.Username != "" || c.Sinks.Cassandra.TLS.Enabled || c.Sinks.Cassandra.Keyspaces || !slices.Equal(c.Sinks.Cassandra.Hosts, []string{"c1.internal:9042"}) {
		t.Fatalf("rendered config reads back as %+v", c)
	}
	if !strings.Contains(ud, "liveagg worker --config /etc/liveagg/worker.yaml") || !strings.Contains(ud, fmt.Sprintf("RestartPreventExitStatus=%d %d\n", cli.ExitDrained, cli.ExitHalted)) {
		t.Fatalf("user data:\n%s", ud)
	}
}

// interfaceMethods reads the methods of named interfaces in a Go file: the narrow interfaces
// the code's AWS clients are used through, so exactly the calls it makes.
func interfaceMethods(t *testing.T, file string, names ...string) map[string][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || !slices.Contains(names, ts.Name.Name) {
			return true
		}
		it, ok := ts.Type.(*ast.InterfaceType)
		if !ok {
			return true
		}
		for _, m := range it.Methods.List {
			for _, id := range m.Names {
				out[ts.Name.Name] = append(out[ts.Name.Name], id.Name)
			}
		}
		return true
	})
	for _, n := range names {
		if len(out[n]) == 0 {
			t.Fatalf("%s: interface %s not found", file, n)
		}
	}
	return out
}

// action maps an SDK call to the IAM action that authorises it.
func action(service, method string) string {
	if service == "s3" {
		switch method {
		case "ListObjectsV2":
			return "s3:ListBucket"
		case "HeadObject":
			return "s3:GetObject"
		case "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload":
			return "s3:PutObject"
		}
	}
	return service + ":" + method
}

// policyActions renders a policy template and returns the actions of its statements whose Sid
// starts with "Code" (what the code calls), and the Sids of the others.
func policyActions(t *testing.T, path string, vars map[string]cty.Value) ([]string, []string) {
	var doc struct {
		Statement []struct {
			Sid    string
			Action []string
		}
	}
	if err := json.Unmarshal([]byte(render(t, path, vars)), &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var code, other []string
	for _, s := range doc.Statement {
		if strings.HasPrefix(s.Sid, "Code") {
			code = append(code, s.Action...)
		} else {
			other = append(other, s.Sid)
		}
	}
	sort.Strings(code)
	return slices.Compact(code), other
}

func derived(sets ...[]string) []string {
	var all []string
	for _, s := range sets {
		all = append(all, s...)
	}
	sort.Strings(all)
	return slices.Compact(all)
}

func fromCode(t *testing.T, file, service string, iface string) []string {
	var out []string
	for _, m := range interfaceMethods(t, file, iface)[iface] {
		out = append(out, action(service, m))
	}
	return out
}

// TestIAMMatchesTheCode: every role is granted exactly the AWS calls its Go code makes, derived
// from the code, so adding an SDK call without its permission (or leaving a permission no code
// uses) fails here. Statements for the runtime (logs, VPC, dead letters, the binary, MSK IAM)
// are named apart and allowed only from a fixed list.
func TestIAMMatchesTheCode(t *testing.T) {
	arn := cty.StringVal("arn:aws:x")
	// Statements not derived from an SDK interface: the Lambda runtime's, the user data's
	// fetches, MSK IAM and Keyspaces (authorised by the Kafka and Cassandra protocols), and
	// the KMS key behind the parameters and secrets the code reads.
	runtime := []string{"RuntimeLogs", "RuntimeVPC", "RuntimeDeadLetters", "Binary", "MSKIAM", "CassandraCA", "SecretsKMS",
		"KeyspacesSystem", "KeyspacesCreate", "KeyspacesTables"}
	worker := func(secrets cty.Value) map[string]cty.Value {
		return map[string]cty.Value{"checkpoint_bucket_arn": arn, "checkpoint_prefix": cty.StringVal("checkpoints/s"), "spec_registry_arn": arn,
			"output_object_arns": strs("arn:aws:s3:::o/s/*"), "parameter_arns": strs("arn:aws:ssm:p"), "secret_arns": secrets,
			"kms_key_arn": arn, "kms_via_services": strs("ssm.r.amazonaws.com"), "binary_object_arn": arn, "cassandra_ca_arn": arn,
			"keyspaces_create_arns": strs("arn:aws:cassandra:k"), "keyspaces_table_arns": strs("arn:aws:cassandra:t"), "keyspaces_system_arn": arn,
			"msk_cluster_arn": cty.StringVal("arn:aws:kafka:c"), "msk_resource_prefix": arn}
	}
	workerCode := derived(fromCode(t, "../workers/checkpoint/s3.go", "s3", "S3API"), fromCode(t, "../workers/sink/s3.go", "s3", "S3API"),
		fromCode(t, "../workers/specsrc/specsrc.go", "s3", "S3API"), fromCode(t, "../workers/spot/spot.go", "ec2", "Tagger"),
		fromCode(t, "../workers/spot/spot.go", "ssm", "Parameters"), fromCode(t, "../workers/cwpub/cwpub.go", "cloudwatch", "API"),
		fromCode(t, "../workers/config/clients.go", "ssm", "SSMParameters"), fromCode(t, "../workers/config/clients.go", "secretsmanager", "Secrets"))
	// Without a secret configured, the code never calls Secrets Manager: no grant for it.
	withoutSecrets := slices.DeleteFunc(slices.Clone(workerCode), func(a string) bool { return strings.HasPrefix(a, "secretsmanager:") })
	for _, tc := range []struct {
		name   string
		policy string
		vars   map[string]cty.Value
		want   []string
	}{
		{"worker", "spot-workers/policy.json.tftpl", worker(strs("arn:aws:secretsmanager:s")), workerCode},
		{"worker without secrets", "spot-workers/policy.json.tftpl", worker(cty.ListValEmpty(cty.String)), withoutSecrets},
		{"spotinterrupt", "control-lambdas/policies/spotinterrupt.json.tftpl",
			map[string]cty.Value{"stack": cty.StringVal("s"), "asg_arns": strs("arn:aws:x"), "token_parameter_arn": arn, "log_group_arn": arn, "dlq_arn": arn,
				"kms_key_arn": arn, "region": cty.StringVal("r")},
			derived(fromCode(t, "../lambdas/spotinterrupt/handler.go", "ec2", "EC2"), fromCode(t, "../lambdas/spotinterrupt/handler.go", "autoscaling", "AutoScaling"),
				fromCode(t, "../lambdas/spotinterrupt/handler.go", "ssm", "SSM"), fromCode(t, "../lambdas/spotinterrupt/handler.go", "cloudwatch", "CloudWatch"))},
		{"autoscaler", "control-lambdas/policies/autoscaler.json.tftpl",
			map[string]cty.Value{"asg_arn": arn, "log_group_arn": arn, "dlq_arn": arn},
			derived(fromCode(t, "../lambdas/autoscaler/autoscaler.go", "cloudwatch", "CloudWatch"), fromCode(t, "../lambdas/autoscaler/autoscaler.go", "autoscaling", "AutoScaling"))},
	} {
		got, other := policyActions(t, tc.policy, tc.vars)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: the policy grants %v, the code calls %v", tc.name, got, tc.want)
		}
		for _, sid := range other {
			if !slices.Contains(runtime, sid) {
				t.Errorf("%s: statement %q is neither derived from the code nor a known runtime need", tc.name, sid)
			}
		}
	}
}

// matches says whether an EventBridge pattern (exact values, nested objects) matches an event.
func matches(pattern, event map[string]any) bool {
	for k, want := range pattern {
		got, ok := event[k]
		if !ok {
			return false
		}
		switch w := want.(type) {
		case map[string]any:
			g, ok := got.(map[string]any)
			if !ok || !matches(w, g) {
				return false
			}
		case []any:
			if !slices.ContainsFunc(w, func(v any) bool { return v == got }) {
				return false
			}
		}
	}
	return true
}

func TestEventPatternsMatchTheSamples(t *testing.T) {
	load := func(path string, vars map[string]cty.Value) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(render(t, path, vars)), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return m
	}
	spot := load("control-lambdas/patterns/spot.json.tftpl", nil)
	// One rule for the stack's groups: it matches a lifecycle action of any of them, and of no
	// other group.
	lifecycle := load("control-lambdas/patterns/lifecycle.json.tftpl", map[string]cty.Value{"asg_names": strs("stack-l1", "sampleASG")})
	other := load("control-lambdas/patterns/lifecycle.json.tftpl", map[string]cty.Value{"asg_names": strs("another-group", "stack-l1")})
	for _, tc := range []struct {
		sample                  string
		spot, lifecycle, others bool
	}{
		{"spot-interruption-warning.json", true, false, false},
		{"rebalance-recommendation.json", true, false, false},
		{"lifecycle-terminate.json", false, true, false},
		{"unknown-detail-type.json", false, false, false},
	} {
		raw, err := os.ReadFile(filepath.Join("../lambdas/spotinterrupt/testdata", tc.sample))
		if err != nil {
			t.Fatal(err)
		}
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if matches(spot, ev) != tc.spot || matches(lifecycle, ev) != tc.lifecycle || matches(other, ev) != tc.others {
			t.Errorf("%s: spot %v lifecycle %v other group %v, want %v %v %v", tc.sample,
				matches(spot, ev), matches(lifecycle, ev), matches(other, ev), tc.spot, tc.lifecycle, tc.others)
		}
	}
}

// emitted is the CloudWatch names of the metrics the code publishes: every metrics.X that the
// workers' CloudWatch publisher and the lambdas reference, named by the shared list.
func emitted(t *testing.T) map[string]bool {
	names := map[string]string{} // Go identifier -> CloudWatch name
	f, err := parser.ParseFile(token.NewFileSet(), "../workers/metrics/names.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Values) != 1 {
			return true
		}
		if cl, ok := vs.Values[0].(*ast.CompositeLit); ok && len(cl.Elts) >= 2 {
			if lit, ok := cl.Elts[1].(*ast.BasicLit); ok {
				s, _ := strconv.Unquote(lit.Value)
				names[vs.Names[0].Name] = s
			}
		}
		return true
	})
	out := map[string]bool{}
	ref := regexp.MustCompile(`metrics\.([A-Z]\w+)`)
	files := []string{"../workers/cwpub/cwpub.go"}
	for _, g := range []string{"../lambdas/*/*.go"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	for _, p := range files {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(p)
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			if cw, ok := names[m[1]]; ok {
				out[cw] = true
			}
		}
	}
	return out
}

func TestDashboardAndAlarmsUseEmittedMetrics(t *testing.T) {
	emit := emitted(t)
	if len(emit) < 10 {
		t.Fatalf("found only %d emitted metrics: %v", len(emit), emit)
	}
	body := render(t, "monitoring/dashboard.json.tftpl", map[string]cty.Value{"region": cty.StringVal("us-east-1"),
		"spec": cty.StringVal("s"), "asg": cty.StringVal("g"), "lag_alarm_records": cty.NumberIntVal(300000),
		"dead_letters_alarm_per_minute": cty.NumberIntVal(300)})
	var dash struct {
		Widgets []struct {
			Properties struct {
				Title       string
				Metrics     [][]any
				Annotations struct {
					Horizontal []struct {
						Label string
						Value float64
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	seen, thresholds := 0, map[string]float64{}
	for _, w := range dash.Widgets {
		for _, a := range w.Properties.Annotations.Horizontal {
			if len(w.Properties.Metrics) > 0 {
				thresholds[a.Label+" on "+fmt.Sprint(w.Properties.Metrics[0][1])] = a.Value
			}
		}
		for _, m := range w.Properties.Metrics {
			if len(m) < 2 || m[0] != "liveagg" {
				t.Errorf("dashboard metric %v is not in the liveagg namespace", m)
				continue
			}
			seen++
			if name, _ := m[1].(string); !emit[name] {
				t.Errorf("dashboard shows %q, which nothing emits", name)
			}
		}
	}
	mainTF, _ := os.ReadFile("monitoring/main.tf")
	alarms := regexp.MustCompile(`metric\s*=\s*"(\w+)"`).FindAllStringSubmatch(string(mainTF), -1)
	for _, a := range alarms {
		if !emit[a[1]] {
			t.Errorf("alarm on %q, which nothing emits", a[1])
		}
	}
	if seen < 10 || len(alarms) != 4 {
		t.Fatalf("dashboard has %d metrics, monitoring %d alarms", seen, len(alarms))
	}
	// The alarms' thresholds are drawn on the graphs of the metrics they watch.
	if thresholds["dead-letter alarm on DeadLettered"] != 300 || thresholds["lag alarm on ConsumerLag"] != 300000 {
		t.Errorf("dashboard threshold lines: %v", thresholds)
	}
}

// dimsRecorder keeps the dimension names of each metric a publisher sends.
type dimsRecorder map[string][]string

func (d dimsRecorder) PutMetricData(_ context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	for _, m := range in.MetricData {
		var names []string
		for _, dim := range m.Dimensions {
			names = append(names, aws.ToString(dim.Name))
		}
		sort.Strings(names)
		d[aws.ToString(in.Namespace)+"/"+aws.ToString(m.MetricName)] = names
	}
	return &cloudwatch.PutMetricDataOutput{}, nil
}

// TestWorkerAlarmsMatchWhatTheWorkersPublish: the alarms on worker metrics (the dead-letter
// alarm among them) watch the namespace, names and exact dimensions the workers' CloudWatch
// publisher sends; an alarm whose dimensions differ from the published ones watches a metric
// that never gets a data point, and with missing data not breaching it never fires.
func TestWorkerAlarmsMatchWhatTheWorkersPublish(t *testing.T) {
	rec := dimsRecorder{}
	if err := cwpub.New(rec, "spec", "group").Publish(context.Background(), cwpub.Sample{DeadLettered: 3}, time.Now()); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, "monitoring")
	run := &planRun{root: cfg, args: map[string]map[string][]cty.Value{}}
	m := newInstance(run, cfg, "", run.inputs(cfg, map[string]cty.Value{"name": cty.StringVal("n"), "spec_name": cty.StringVal("spec"),
		"asg_name": cty.StringVal("group"), "lag_alarm_records": cty.NumberIntVal(1000)}, hcl.Range{}))
	m.check()
	if len(run.problems) > 0 {
		t.Fatal(run.problems)
	}
	node := run.args["aws_cloudwatch_metric_alarm.this"]
	if len(node["metric_name"]) != 4 {
		t.Fatalf("%d alarms evaluated", len(node["metric_name"]))
	}
	found := false
	for i, name := range node["metric_name"] {
		key := node["namespace"][i].AsString() + "/" + name.AsString()
		published, ok := rec[key]
		if !ok {
			t.Errorf("alarm on %s: the workers do not publish it", key)
			continue
		}
		var dims []string
		for k := range node["dimensions"][i].AsValueMap() {
			dims = append(dims, k)
		}
		sort.Strings(dims)
		if !slices.Equal(dims, published) {
			t.Errorf("alarm on %s has dimensions %v, the workers publish it with %v", key, dims, published)
		}
		if name.AsString() == metrics.DeadLettered.CloudWatch {
			found = true
			if th := node["threshold"][i]; !th.RawEquals(cty.NumberIntVal(100)) || !node["statistic"][i].RawEquals(cty.StringVal("Sum")) || !node["period"][i].RawEquals(cty.NumberIntVal(60)) {
				t.Errorf("dead-letter alarm: %s of a %s-second period above %s, want the Sum per minute above the default 100",
					node["statistic"][i].GoString(), node["period"][i].GoString(), th.GoString())
			}
		}
	}
	if !found {
		t.Error("no alarm on the dead-letter rate")
	}
}

// TestLambdaEnvironments: each function gets every variable its code requires (the "(required)"
// lines of its documented environment) and no variable its code does not read, so a new
// required setting in a lambda fails here rather than at the function's first event.
func TestLambdaEnvironments(t *testing.T) {
	cfg := loadConfig(t, "control-lambdas")
	run := &planRun{root: cfg, args: map[string]map[string][]cty.Value{}}
	fleet := func(asg string, autoscaler cty.Value) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"asg_name": cty.StringVal(asg), "spec_name": cty.StringVal("spec-" + asg),
			"partitions": cty.NumberIntVal(12), "autoscaler": autoscaler})
	}
	fleets := cty.ObjectVal(map[string]cty.Value{
		"l1":  fleet("s-l1", cty.NullVal(cty.DynamicPseudoType)),
		"org": fleet("s-org", cty.ObjectVal(map[string]cty.Value{"target_utilization": cty.NumberFloatVal(0.8), "dry_run": cty.True})),
	})
	fns := newInstance(run, cfg, "", run.inputs(cfg, map[string]cty.Value{"fleets": fleets}, hcl.Range{})).local("functions")
	if len(run.problems) > 0 {
		t.Fatal(run.problems)
	}
	if n := len(fns.AsValueMap()); n != 3 {
		t.Fatalf("two fleets make %d functions, want one spot function and two autoscalers", n)
	}
	if asg := fns.GetAttr("spotinterrupt").GetAttr("env").GetAttr("LIVEAGG_ASG"); !asg.RawEquals(cty.StringVal("s-l1,s-org")) {
		t.Errorf("the spot function serves LIVEAGG_ASG=%s, want every fleet's group, comma-separated", asg.GoString())
	}
	for key, v := range fns.AsValueMap() {
		fn := v.GetAttr("code").AsString()
		reads, required := map[string]bool{}, map[string]bool{}
		files, _ := filepath.Glob(filepath.Join("../lambdas", fn, "*.go"))
		more, _ := filepath.Glob(filepath.Join("../lambdas", fn, "bootstrap", "*.go"))
		for _, f := range append(files, more...) {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`"(LIVEAGG_[A-Z0-9_]+)"`).FindAllStringSubmatch(string(src), -1) {
				reads[m[1]] = true
			}
			for _, m := range regexp.MustCompile(`(?m)^//\s+(LIVEAGG_[A-Z0-9_]+)\s.*\(required\)`).FindAllStringSubmatch(string(src), -1) {
				required[m[1]] = true
			}
		}
		if len(files) == 0 || len(required) == 0 {
			t.Errorf("%s (%s): found no code or no documented required variables; has the doc format changed?", key, fn)
		}
		set := map[string]bool{}
		for name := range v.GetAttr("env").Type().AttributeTypes() {
			set[name] = true
			if !reads[name] {
				t.Errorf("%s: the module sets %s, which the code does not read", key, name)
			}
		}
		for name := range required {
			if !set[name] {
				t.Errorf("%s: the code requires %s, which the module does not set", key, name)
			}
		}
	}
}
