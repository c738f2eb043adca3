package modules_test

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// depGraph is the dependency graph Terraform builds for a configuration, at the granularity
// it orders applies by: resources, data sources, variables, locals, outputs, module calls and
// provider configurations, across module boundaries, with explicit depends_on (a module
// call's depends_on applies to everything inside the module). A resource is applied only
// after everything it reaches here.
type depGraph struct {
	edges map[string]map[string]bool
	types map[string]string // node -> managed resource type
	where map[string]hcl.Range
}

func buildGraph(root *tfConfig) *depGraph {
	g := &depGraph{edges: map[string]map[string]bool{}, types: map[string]string{}, where: map[string]hcl.Range{}}
	g.addConfig(root, root, "", nil, "", nil)
	return g
}

func (g *depGraph) edge(from string, to ...string) {
	if g.edges[from] == nil {
		g.edges[from] = map[string]bool{}
	}
	for _, t := range to {
		g.edges[from][t] = true
	}
}

// addConfig adds a module's nodes at path (module.a.module.b. or ""), called by call from
// parent at parentPath.
func (g *depGraph) addConfig(root, c *tfConfig, path string, call *tfModuleCall, parentPath string, parent *tfConfig) {
	inModule := func(node string) {
		g.edge(node)
		if call != nil {
			g.edge(node, parentPath+"module."+call.name)
		}
	}
	for name, v := range c.variables {
		node := path + "var." + name
		inModule(node)
		g.where[node] = v.block.DefRange()
		if call != nil {
			if a := call.block.Body.Attributes[name]; a != nil {
				g.edge(node, g.resolve(parent, parentPath, a.Expr.Variables())...)
			}
		}
	}
	for name, a := range c.locals {
		node := path + "local." + name
		inModule(node)
		g.edge(node, g.resolve(c, path, a.Expr.Variables())...)
	}
	for _, r := range c.resources {
		node := path + r.addr()
		inModule(node)
		g.where[node] = r.block.DefRange()
		if r.mode == "resource" {
			g.types[node] = r.typ
		}
		g.edge(node, g.resolve(c, path, bodyRefs(r.block.Body))...)
		prov := strings.SplitN(r.typ, "_", 2)[0]
		if a := r.block.Body.Attributes["provider"]; a != nil {
			prov = strings.SplitN(hcl.ExprAsKeyword(a.Expr), ".", 2)[0]
			if tr, diags := hcl.AbsTraversalForExpr(a.Expr); !diags.HasErrors() {
				prov = tr.RootName()
			}
		}
		if _, ok := root.providers[prov]; ok {
			g.edge(node, "provider."+prov)
		}
	}
	for name, b := range c.outputs {
		node := path + "output." + name
		inModule(node)
		g.edge(node, g.resolve(c, path, bodyRefs(b.Body))...)
	}
	for _, mc := range c.modules {
		node := path + "module." + mc.name
		inModule(node)
		var refs []hcl.Traversal
		for _, meta := range []string{"for_each", "count", "depends_on"} {
			if a := mc.block.Body.Attributes[meta]; a != nil {
				refs = append(refs, a.Expr.Variables()...)
			}
		}
		g.edge(node, g.resolve(c, path, refs)...)
		g.addConfig(root, mc.child, node+".", mc, path, c)
	}
	if path == "" {
		for name, b := range c.providers {
			g.edge("provider."+name, g.resolve(c, path, bodyRefs(b.Body))...)
		}
	}
}

// bodyRefs are the references a block makes: its attributes', nested and dynamic blocks',
// depends_on, and its lifecycle conditions; not ignore_changes, which names attributes.
func bodyRefs(b *hclsyntax.Body) []hcl.Traversal {
	var out []hcl.Traversal
	for _, a := range b.Attributes {
		out = append(out, a.Expr.Variables()...)
	}
	for _, blk := range b.Blocks {
		if blk.Type == "lifecycle" {
			for _, c := range blk.Body.Blocks {
				out = append(out, bodyRefs(c.Body)...)
			}
			if a := blk.Body.Attributes["replace_triggered_by"]; a != nil {
				out = append(out, a.Expr.Variables()...)
			}
			continue
		}
		out = append(out, bodyRefs(blk.Body)...)
	}
	return out
}

// resolve maps references made in module c (at path) to graph nodes.
func (g *depGraph) resolve(c *tfConfig, path string, refs []hcl.Traversal) []string {
	var out []string
	attr := func(tr hcl.Traversal, i int) string {
		if len(tr) > i {
			if a, ok := tr[i].(hcl.TraverseAttr); ok {
				return a.Name
			}
		}
		return ""
	}
	for _, tr := range refs {
		switch root := tr.RootName(); root {
		case "var", "local":
			out = append(out, path+root+"."+attr(tr, 1))
		case "module":
			name := attr(tr, 1)
			for _, mc := range c.modules {
				if mc.name != name {
					continue
				}
				i := 2
				if len(tr) > i {
					if _, ok := tr[i].(hcl.TraverseIndex); ok {
						i++
					}
				}
				if o := attr(tr, i); o != "" {
					out = append(out, path+"module."+name+".output."+o)
				} else {
					for o := range mc.child.outputs {
						out = append(out, path+"module."+name+".output."+o)
					}
				}
			}
		case "data":
			out = append(out, path+"data."+attr(tr, 1)+"."+attr(tr, 2))
		default:
			for _, r := range c.resources {
				if r.mode == "resource" && r.typ == root && r.name == attr(tr, 1) {
					out = append(out, path+r.addr())
				}
			}
		}
	}
	return out
}

func (g *depGraph) reaches(from, to string) bool {
	seen := map[string]bool{}
	var walk func(n string) bool
	walk = func(n string) bool {
		if n == to {
			return true
		}
		if seen[n] {
			return false
		}
		seen[n] = true
		for m := range g.edges[n] {
			if walk(m) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

// ofType lists the graph's managed resources of a type, sorted.
func (g *depGraph) ofType(match func(string) bool) []string {
	var out []string
	for n, typ := range g.types {
		if match(typ) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// cycle returns the nodes of a dependency cycle, or nil: Terraform refuses a configuration
// with one.
func (g *depGraph) cycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack, found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		var next []string
		for m := range g.edges[n] {
			next = append(next, m)
		}
		sort.Strings(next)
		for _, m := range next {
			if color[m] == grey {
				i := slices.Index(stack, m)
				found = append(slices.Clone(stack[i:]), m)
				return true
			}
			if color[m] == white && visit(m) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	var nodes []string
	for n := range g.edges {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		if color[n] == white && visit(n) {
			return found
		}
	}
	return nil
}

// knownStrings returns the known string values an argument took, and whether all were known.
func knownStrings(vs []cty.Value) ([]string, bool) {
	var out []string
	for _, v := range vs {
		v, _ = v.UnmarkDeep()
		if !v.IsWhollyKnown() || v.IsNull() || v.Type() != cty.String {
			return nil, false
		}
		out = append(out, v.AsString())
	}
	return out, len(out) > 0
}

// TestApplyOrder checks, in every configuration, the orders a first apply needs that nothing
// but the dependency graph gives:
//   - every liveagg_aggregation_spec is stored only after the bucket of the spec registry
//     exists and is configured (versioning, encryption, policy, ...): the liveagg provider
//     writes specs with PutObject, which fails on a bucket not made yet. The registry bucket
//     is the one the liveagg provider's spec_registry names when both are known; otherwise
//     every bucket the configuration makes.
//   - compute that runs under an IAM role (an Auto Scaling group's instances, a function)
//     starts only after that role's policies are attached: an instance whose user data runs
//     before may fail to fetch its binary and never recover.
//   - an Auto Scaling group of workers starts after the specs exist, which workers load at
//     boot.
//   - no dependency cycle.
func TestApplyOrder(t *testing.T) {
	for _, pc := range planCases(t) {
		t.Run(pc.name, func(t *testing.T) {
			run := planRoot(t, pc)
			g := run.graph
			if c := g.cycle(); c != nil {
				t.Errorf("dependency cycle: %s", strings.Join(c, " -> "))
			}
			specs := g.ofType(func(s string) bool { return s == "liveagg_aggregation_spec" })

			registry, registryKnown := map[string]bool{}, false
			if locs, ok := knownStrings(run.args["provider.liveagg"]["spec_registry.location"]); ok {
				registryKnown = true
				for _, l := range locs {
					if u, err := url.Parse(l); err == nil && u.Scheme == "s3" {
						registry[u.Host] = true
					}
				}
			}
			for _, bucket := range g.ofType(func(s string) bool { return s == "aws_s3_bucket" }) {
				if names, ok := knownStrings(run.args[bucket]["bucket"]); ok && registryKnown &&
					!slices.ContainsFunc(names, func(n string) bool { return registry[n] }) {
					continue
				}
				need := []string{bucket}
				for _, cfg := range g.ofType(func(s string) bool { return strings.HasPrefix(s, "aws_s3_bucket_") }) {
					if g.edges[cfg][bucket] {
						need = append(need, cfg)
					}
				}
				for _, s := range specs {
					for _, n := range need {
						if !g.reaches(s, n) {
							t.Errorf("%s does not depend on %s: on a first apply the spec is written before the registry bucket is ready (%s)", s, n, g.where[s])
						}
					}
				}
			}

			for _, c := range g.ofType(func(s string) bool {
				return s == "aws_autoscaling_group" || s == "aws_lambda_function" || s == "aws_instance"
			}) {
				for _, role := range g.ofType(func(s string) bool { return s == "aws_iam_role" }) {
					if !g.reaches(c, role) {
						continue
					}
					for _, p := range g.ofType(func(s string) bool {
						return s == "aws_iam_role_policy" || s == "aws_iam_role_policy_attachment"
					}) {
						if g.edges[p][role] && !g.reaches(c, p) {
							t.Errorf("%s runs as %s but does not depend on %s: it may start before its permissions exist (%s)", c, role, p, g.where[c])
						}
					}
				}
				if g.types[c] == "aws_autoscaling_group" && len(specs) > 0 &&
					!slices.ContainsFunc(specs, func(s string) bool { return g.reaches(c, s) }) {
					t.Errorf("%s starts workers before any spec they load exists (%s)", c, g.where[c])
				}
			}
		})
	}
}

// TestApplyOrderCatches: the graph check fails a configuration that writes specs into a
// bucket it makes without ordering them after it, and passes one that does.
func TestApplyOrderCatches(t *testing.T) {
	build := func(dependsOn string) *depGraph {
		c := &tfConfig{dir: ".", variables: map[string]*tfVariable{}, locals: map[string]*hclsyntax.Attribute{},
			outputs: map[string]*hclsyntax.Block{}, providers: map[string]*hclsyntax.Block{}}
		for _, src := range []string{`resource "aws_s3_bucket" "b" {}`, `resource "aws_s3_bucket_versioning" "v" {
  bucket = aws_s3_bucket.b.id
}`, `resource "liveagg_aggregation_spec" "s" {
  ` + dependsOn + `
}`} {
			f, diags := hclsyntax.ParseConfig([]byte(src), "main.tf", hcl.Pos{Line: 1, Column: 1})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			b := f.Body.(*hclsyntax.Body).Blocks[0]
			c.resources = append(c.resources, &tfResource{mode: "resource", typ: b.Labels[0], name: b.Labels[1], block: b})
		}
		return buildGraph(c)
	}
	if g := build(""); g.reaches("liveagg_aggregation_spec.s", "aws_s3_bucket.b") {
		t.Error("a spec with no reference to the bucket reaches it")
	}
	if g := build("depends_on = [aws_s3_bucket_versioning.v]"); !g.reaches("liveagg_aggregation_spec.s", "aws_s3_bucket.b") {
		t.Error("a spec that depends on the bucket's versioning does not reach the bucket")
	}
}

// version is a provider or Terraform version, major.minor.patch.
type version [3]int

func parseVersion(s string) (version, error) {
	var v version
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) > 3 {
		return v, fmt.Errorf("version %q", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return v, fmt.Errorf("version %q", s)
		}
		v[i] = n
	}
	return v, nil
}

func (v version) cmp(w version) int {
	for i := range v {
		if v[i] != w[i] {
			return v[i] - w[i]
		}
	}
	return 0
}

type constraint struct {
	op    string
	v     version
	parts int // how many version parts were written, for ~>
}

// parseConstraints reads a version constraint string as Terraform does (=, !=, >, >=, <, <=,
// ~>, comma-separated).
func parseConstraints(s string) ([]constraint, error) {
	var out []constraint
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		op := "="
		for _, o := range []string{">=", "<=", "~>", "!=", ">", "<", "="} {
			if strings.HasPrefix(c, o) {
				op, c = o, strings.TrimSpace(c[len(o):])
				break
			}
		}
		v, err := parseVersion(c)
		if err != nil {
			return nil, err
		}
		out = append(out, constraint{op: op, v: v, parts: len(strings.Split(c, "."))})
	}
	return out, nil
}

func (c constraint) allows(v version) bool {
	d := v.cmp(c.v)
	switch c.op {
	case "=":
		return d == 0
	case "!=":
		return d != 0
	case ">":
		return d > 0
	case ">=":
		return d >= 0
	case "<":
		return d < 0
	case "<=":
		return d <= 0
	case "~>":
		upper := c.v
		if c.parts <= 1 {
			return d >= 0
		}
		upper[c.parts-2]++
		for i := c.parts - 1; i < 3; i++ {
			upper[i] = 0
		}
		return d >= 0 && v.cmp(upper) < 0
	}
	return false
}

func allowsAll(cs []constraint, v version) bool {
	for _, c := range cs {
		if !c.allows(v) {
			return false
		}
	}
	return true
}

// looser finds a version the outer constraint allows and the inner one refuses, trying the
// versions either names and their neighbours.
func looser(outer, inner []constraint) (version, bool) {
	var cand []version
	for _, c := range append(slices.Clone(outer), inner...) {
		cand = append(cand, c.v, version{c.v[0], c.v[1], c.v[2] + 1}, version{c.v[0], c.v[1] + 1, 0}, version{c.v[0] + 1, 0, 0})
		if c.v[2] > 0 {
			cand = append(cand, version{c.v[0], c.v[1], c.v[2] - 1})
		} else if c.v[1] > 0 {
			cand = append(cand, version{c.v[0], c.v[1] - 1, 99})
		} else if c.v[0] > 0 {
			cand = append(cand, version{c.v[0] - 1, 99, 99})
		}
	}
	for _, v := range cand {
		if allowsAll(outer, v) && !allowsAll(inner, v) {
			return v, true
		}
	}
	return version{}, false
}

// TestVersionConstraintsHold: a configuration that calls modules declares every provider they
// need, from the same source, and allows no provider or Terraform version one of them
// refuses: otherwise `init` picks a version the module was not written for (data.aws_region's
// region attribute, say, is AWS provider 6).
func TestVersionConstraintsHold(t *testing.T) {
	var descend func(c *tfConfig, visit func(*tfConfig))
	descend = func(c *tfConfig, visit func(*tfConfig)) {
		for _, mc := range c.modules {
			visit(mc.child)
			descend(mc.child, visit)
		}
	}
	for _, dir := range roots {
		c := loadConfig(t, dir)
		descend(c, func(m *tfConfig) {
			for name, req := range m.required {
				have, ok := c.required[name]
				if !ok {
					t.Errorf("%s: %s needs provider %q (%s), which %s does not declare", dir, m.dir, name, req[0], dir)
					continue
				}
				if have[0] != req[0] {
					t.Errorf("%s: provider %q is %s there and %s in %s", dir, name, have[0], req[0], m.dir)
				}
				check(t, dir, "provider "+name, have[1], m.dir, req[1])
			}
			check(t, dir, "required_version", c.requiredVersion, m.dir, m.requiredVersion)
		})
	}
}

func check(t *testing.T, dir, what, outer, inner, innerConstraint string) {
	t.Helper()
	if innerConstraint == "" {
		return
	}
	if outer == "" {
		t.Errorf("%s: %s is unconstrained, %s needs %s", dir, what, inner, innerConstraint)
		return
	}
	o, err := parseConstraints(outer)
	if err != nil {
		t.Fatalf("%s: %s: %v", dir, what, err)
	}
	i, err := parseConstraints(innerConstraint)
	if err != nil {
		t.Fatalf("%s: %s: %v", inner, what, err)
	}
	if v, ok := looser(o, i); ok {
		t.Errorf("%s: %s %q allows %d.%d.%d, which %s refuses (%q)", dir, what, outer, v[0], v[1], v[2], inner, innerConstraint)
	}
}

// TestLagAlarmThresholds: each fleet's lag alarm threshold follows its own plan (peak input
// times lag_alarm_seconds, at least one poll per worker at max_workers) instead of one number
// for every fleet, and the per-worker poll the module assumes is the worker's own default.
func TestLagAlarmThresholds(t *testing.T) {
	cfg := loadConfig(t, "aggregation-stack")
	poll, diags := cfg.locals["poll_records_per_worker"].Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	src, err := os.ReadFile("../workers/worker/worker.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`cfg\.MaxPollRecords = ([0-9_]+)`).FindSubmatch(src)
	if m == nil {
		t.Fatal("workers/worker/worker.go: no MaxPollRecords default")
	}
	if want, _ := strconv.Atoi(strings.ReplaceAll(string(m[1]), "_", "")); !poll.RawEquals(cty.NumberIntVal(int64(want))) {
		t.Errorf("poll_records_per_worker is %s, the worker polls %d", poll.GoString(), want)
	}

	fleet := func(rate int64, override cty.Value) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"peak_records_per_second": cty.NumberIntVal(rate), "lag_alarm_records": override})
	}
	plan := func(maxWorkers int64) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"max_workers": cty.NumberIntVal(maxWorkers)})
	}
	null := cty.NullVal(cty.Number)
	ctx := &hcl.EvalContext{Functions: planFunctions(false), Variables: map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{"lag_alarm_seconds": cty.NumberIntVal(60), "fleets": cty.ObjectVal(map[string]cty.Value{
			"l1": fleet(1500000, null), "org": fleet(5000, null), "quiet": fleet(10, null), "fixed": fleet(5000, cty.NumberIntVal(1234)),
		})}),
		"local": cty.ObjectVal(map[string]cty.Value{"poll_records_per_worker": poll}),
		"module": cty.ObjectVal(map[string]cty.Value{"pipeline": cty.ObjectVal(map[string]cty.Value{"fleet_plans": cty.ObjectVal(map[string]cty.Value{
			"l1": plan(48), "org": plan(6), "quiet": plan(2), "fixed": plan(6),
		})})}),
	}}
	got, diags := cfg.locals["lag_alarm_records"].Expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for k, want := range map[string]int64{"l1": 90000000, "org": 300000, "quiet": 20000, "fixed": 1234} {
		if v := got.GetAttr(k); !v.RawEquals(cty.NumberIntVal(want)) {
			t.Errorf("fleet %s: lag alarm at %s records, want %d", k, v.GoString(), want)
		}
	}
}

// TestDeadLetterAlarmThresholds: each fleet's dead-letter alarm fires at a share of its own
// planned peak input per minute (at least 10 records), or at the fleet's own setting.
func TestDeadLetterAlarmThresholds(t *testing.T) {
	cfg := loadConfig(t, "aggregation-stack")
	fraction := cfg.variables["dead_letter_alarm_fraction"].def
	if !fraction.RawEquals(cty.NumberFloatVal(0.001)) {
		t.Errorf("dead_letter_alarm_fraction defaults to %s; the docs and the cases below say 0.001", fraction.GoString())
	}
	fleet := func(rate int64, override cty.Value) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"peak_records_per_second": cty.NumberIntVal(rate), "dead_letters_alarm_per_minute": override})
	}
	null := cty.NullVal(cty.Number)
	ctx := &hcl.EvalContext{Functions: planFunctions(false), Variables: map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{"dead_letter_alarm_fraction": fraction, "fleets": cty.ObjectVal(map[string]cty.Value{
			"l1": fleet(1500000, null), "org": fleet(5000, null), "quiet": fleet(10, null), "fixed": fleet(5000, cty.NumberIntVal(42)),
		})}),
	}}
	got, diags := cfg.locals["dead_letters_alarm_per_minute"].Expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for k, want := range map[string]int64{"l1": 90000, "org": 300, "quiet": 10, "fixed": 42} {
		if v := got.GetAttr(k); !v.RawEquals(cty.NumberIntVal(want)) {
			t.Errorf("fleet %s: dead-letter alarm at %s records a minute, want %d", k, v.GoString(), want)
		}
	}
}
