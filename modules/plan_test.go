package modules_test

// A plan without the AWS provider: the AWS provider binary cannot be installed here, so
// `tofu plan` cannot run on the modules that need it. What breaks a real first plan or apply
// is, however, mostly in the configuration itself: a function given a null, a for_each over
// values known only after apply, a reference to an output that does not exist, a validation
// or precondition the given values fail, or two resources applied in the wrong order. This
// file evaluates every configuration the way Terraform and OpenTofu do at plan time (the
// variables at their defaults, and with the values the example roots pass), with every
// resource attribute unknown, and builds the dependency graph they would build, so those
// mistakes fail `go test` instead of a user's first apply.

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	"go.yaml.in/yaml/v3"
)

// Marks on unknown values say where the unknown comes from. Terraform refuses count and
// for_each over values a managed resource only has after apply (applyMark); an unknown that
// comes from a required variable the test has no value for (unmarked), or from a data source
// that Terraform would read during plan (dataMark), is not such an error: the test then
// checks one instance with an unknown key instead.
type planMark string

const (
	applyMark planMark = "known after apply"
	dataMark  planMark = "read by a data source"
)

// ---------------------------------------------------------------------------------------
// Configuration

type tfVariable struct {
	name     string
	typ      cty.Type
	defaults *typeexpr.Defaults
	def      cty.Value // cty.NilVal: required
	nullable bool
	block    *hclsyntax.Block
}

type tfResource struct {
	mode  string // "resource" or "data"
	typ   string
	name  string
	block *hclsyntax.Block
}

func (r *tfResource) addr() string {
	if r.mode == "data" {
		return "data." + r.typ + "." + r.name
	}
	return r.typ + "." + r.name
}

type tfModuleCall struct {
	name  string
	block *hclsyntax.Block
	child *tfConfig
}

type tfConfig struct {
	dir             string
	variables       map[string]*tfVariable
	locals          map[string]*hclsyntax.Attribute
	resources       []*tfResource
	modules         []*tfModuleCall
	outputs         map[string]*hclsyntax.Block
	providers       map[string]*hclsyntax.Block
	requiredVersion string
	required        map[string][2]string // local name -> source, version constraint
}

// loadConfig parses a module directory and, recursively, the local modules it calls.
func loadConfig(t *testing.T, dir string) *tfConfig {
	t.Helper()
	c := &tfConfig{dir: filepath.Clean(dir), variables: map[string]*tfVariable{}, locals: map[string]*hclsyntax.Attribute{},
		outputs: map[string]*hclsyntax.Block{}, providers: map[string]*hclsyntax.Block{}, required: map[string][2]string{}}
	files, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	if len(files) == 0 {
		t.Fatalf("%s: no .tf files", dir)
	}
	p := hclparse.NewParser()
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", f, diags)
		}
		for _, b := range file.Body.(*hclsyntax.Body).Blocks {
			switch b.Type {
			case "variable":
				c.variables[b.Labels[0]] = parseVariable(t, b)
			case "locals":
				for n, a := range b.Body.Attributes {
					c.locals[n] = a
				}
			case "resource", "data":
				c.resources = append(c.resources, &tfResource{mode: b.Type, typ: b.Labels[0], name: b.Labels[1], block: b})
			case "module":
				src, diags := b.Body.Attributes["source"].Expr.Value(nil)
				if diags.HasErrors() || !strings.HasPrefix(src.AsString(), ".") {
					t.Fatalf("%s: module %q: only local sources are checked here", f, b.Labels[0])
				}
				c.modules = append(c.modules, &tfModuleCall{name: b.Labels[0], block: b,
					child: loadConfig(t, filepath.Join(dir, src.AsString()))})
			case "output":
				c.outputs[b.Labels[0]] = b
			case "provider":
				c.providers[b.Labels[0]] = b
			case "terraform":
				if a := b.Body.Attributes["required_version"]; a != nil {
					v, _ := a.Expr.Value(nil)
					c.requiredVersion = v.AsString()
				}
				for _, rp := range b.Body.Blocks {
					if rp.Type != "required_providers" {
						continue
					}
					for n, a := range rp.Body.Attributes {
						v, diags := a.Expr.Value(nil)
						if diags.HasErrors() {
							t.Fatalf("%s: required_providers.%s: %v", f, n, diags)
						}
						var req [2]string
						if v.Type().HasAttribute("source") {
							req[0] = v.GetAttr("source").AsString()
						}
						if v.Type().HasAttribute("version") {
							req[1] = v.GetAttr("version").AsString()
						}
						c.required[n] = req
					}
				}
			}
		}
	}
	return c
}

func parseVariable(t *testing.T, b *hclsyntax.Block) *tfVariable {
	v := &tfVariable{name: b.Labels[0], typ: cty.DynamicPseudoType, nullable: true, block: b}
	if a := b.Body.Attributes["type"]; a != nil {
		typ, defaults, diags := typeexpr.TypeConstraintWithDefaults(a.Expr)
		if diags.HasErrors() {
			t.Fatalf("variable %q: %v", v.name, diags)
		}
		v.typ, v.defaults = typ, defaults
	}
	if a := b.Body.Attributes["nullable"]; a != nil {
		n, _ := a.Expr.Value(nil)
		v.nullable = n.True()
	}
	if a := b.Body.Attributes["default"]; a != nil {
		d, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("variable %q default: %v", v.name, diags)
		}
		cv, err := v.convert(d)
		if err != nil {
			t.Fatalf("variable %q: default does not fit its type: %v", v.name, err)
		}
		v.def = cv
	}
	return v
}

// convert gives a value the variable's type, optional attributes' defaults included, as
// Terraform does with a given value.
func (v *tfVariable) convert(val cty.Value) (cty.Value, error) {
	if v.defaults != nil && !val.IsNull() {
		val = v.defaults.Apply(val)
	}
	return convert.Convert(val, v.typ)
}

// ---------------------------------------------------------------------------------------
// Functions: Terraform's and OpenTofu's, as far as these configurations use them. A call to
// any other function fails the test ("Call to unknown function"), so a configuration cannot
// use one whose behaviour nothing here checks.

func planFunctions(withTemplatefile bool) map[string]function.Function {
	fs := map[string]function.Function{
		"abs": stdlib.AbsoluteFunc, "ceil": stdlib.CeilFunc, "floor": stdlib.FloorFunc, "max": stdlib.MaxFunc, "min": stdlib.MinFunc,
		"concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc, "distinct": stdlib.DistinctFunc, "flatten": stdlib.FlattenFunc,
		"format": stdlib.FormatFunc, "join": stdlib.JoinFunc, "jsondecode": stdlib.JSONDecodeFunc, "jsonencode": stdlib.JSONEncodeFunc,
		"keys": stdlib.KeysFunc, "lookup": stdlib.LookupFunc, "lower": stdlib.LowerFunc, "merge": stdlib.MergeFunc,
		"regex": stdlib.RegexFunc, "regexall": stdlib.RegexAllFunc, "setsubtract": stdlib.SetSubtractFunc, "split": stdlib.SplitFunc,
		"trimprefix": stdlib.TrimPrefixFunc, "trimsuffix": stdlib.TrimSuffixFunc, "upper": stdlib.UpperFunc, "values": stdlib.ValuesFunc,
		"compact": stdlib.CompactFunc, "zipmap": stdlib.ZipmapFunc, "try": tryfunc.TryFunc, "can": tryfunc.CanFunc,
		"coalesce": coalesceFunc, "replace": replaceFunc, "base64encode": base64encodeFunc, "length": lengthFunc,
		"startswith": startswithFunc, "yamldecode": yamldecodeFunc, "file": fileFunc, "filebase64sha256": filebase64sha256Func,
		"tostring": makeToFunc(cty.String), "tonumber": makeToFunc(cty.Number), "tobool": makeToFunc(cty.Bool),
		"toset": makeToFunc(cty.Set(cty.DynamicPseudoType)), "tolist": makeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap": makeToFunc(cty.Map(cty.DynamicPseudoType)),
	}
	if withTemplatefile {
		fs["templatefile"] = templatefileFunc()
	}
	return fs
}

// coalesceFunc is Terraform's coalesce: the first argument that is neither null nor an empty
// string, an error when there is none (unlike cty's, which only skips nulls).
var coalesceFunc = function.New(&function.Spec{
	VarParam: &function.Parameter{Name: "vals", Type: cty.DynamicPseudoType, AllowUnknown: true, AllowDynamicType: true, AllowNull: true},
	Type: func(args []cty.Value) (cty.Type, error) {
		types := make([]cty.Type, len(args))
		for i, a := range args {
			types[i] = a.Type()
		}
		ty, _ := convert.UnifyUnsafe(types)
		if ty == cty.NilType {
			return cty.NilType, errors.New("all arguments must have the same type")
		}
		return ty, nil
	},
	Impl: func(args []cty.Value, ty cty.Type) (cty.Value, error) {
		for _, a := range args {
			a, _ = convert.Convert(a, ty)
			if !a.IsKnown() {
				return cty.UnknownVal(ty), nil
			}
			if a.IsNull() || (ty == cty.String && a.RawEquals(cty.StringVal(""))) {
				continue
			}
			return a, nil
		}
		return cty.NilVal, errors.New("no non-null, non-empty-string arguments")
	},
})

// replaceFunc is Terraform's replace: a substring, or a regular expression when written
// between slashes.
var replaceFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "substr", Type: cty.String}, {Name: "replace", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		sub := args[1].AsString()
		if len(sub) > 1 && strings.HasPrefix(sub, "/") && strings.HasSuffix(sub, "/") {
			re, err := regexp.Compile(sub[1 : len(sub)-1])
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(re.ReplaceAllString(args[0].AsString(), args[2].AsString())), nil
		}
		return cty.StringVal(strings.ReplaceAll(args[0].AsString(), sub, args[2].AsString())), nil
	},
})

var base64encodeFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.StringVal(base64.StdEncoding.EncodeToString([]byte(args[0].AsString()))), nil
	},
})

// lengthFunc is Terraform's length: of a string (in characters) or of a collection.
var lengthFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowDynamicType: true, AllowUnknown: true}},
	Type:   function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if args[0].Type() == cty.String {
			return stdlib.Strlen(args[0])
		}
		return stdlib.Length(args[0])
	},
})

var startswithFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "prefix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasPrefix(args[0].AsString(), args[1].AsString())), nil
	},
})

// makeToFunc is Terraform's tostring, tonumber, tobool, toset, tolist, tomap: a conversion
// that keeps nulls and unknowns.
func makeToFunc(want cty.Type) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType, AllowNull: true, AllowUnknown: true, AllowDynamicType: true}},
		Type: func(args []cty.Value) (cty.Type, error) {
			if !want.HasDynamicTypes() {
				return want, nil
			}
			v, err := convert.Convert(args[0], want)
			if err != nil {
				return cty.NilType, err
			}
			return v.Type(), nil
		},
		Impl: func(args []cty.Value, ty cty.Type) (cty.Value, error) {
			v, err := convert.Convert(args[0], ty)
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot convert %s to %s", args[0].Type().FriendlyName(), ty.FriendlyNameForConstraint())
			}
			return v, nil
		},
	})
}

// yamldecodeFunc is Terraform's yamldecode: mappings become objects, sequences tuples, and
// scalars strings, numbers, bools or null by their YAML 1.2 core-schema tag.
var yamldecodeFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "src", Type: cty.String}},
	Type: func(args []cty.Value) (cty.Type, error) {
		if !args[0].IsKnown() {
			return cty.DynamicPseudoType, nil
		}
		v, err := yamlToCty(args[0].AsString())
		if err != nil {
			return cty.NilType, err
		}
		return v.Type(), nil
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) { return yamlToCty(args[0].AsString()) },
})

func yamlToCty(src string) (cty.Value, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return cty.NilVal, err
	}
	if len(doc.Content) == 0 {
		return cty.NullVal(cty.DynamicPseudoType), nil
	}
	return yamlNode(doc.Content[0])
}

func yamlNode(n *yaml.Node) (cty.Value, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return yamlNode(n.Alias)
	case yaml.MappingNode:
		attrs := map[string]cty.Value{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := yamlNode(n.Content[i+1])
			if err != nil {
				return cty.NilVal, err
			}
			attrs[n.Content[i].Value] = v
		}
		return cty.ObjectVal(attrs), nil
	case yaml.SequenceNode:
		var vs []cty.Value
		for _, c := range n.Content {
			v, err := yamlNode(c)
			if err != nil {
				return cty.NilVal, err
			}
			vs = append(vs, v)
		}
		return cty.TupleVal(vs), nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return cty.NullVal(cty.DynamicPseudoType), nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return cty.NilVal, err
			}
			return cty.BoolVal(b), nil
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return cty.NilVal, err
			}
			if v, err := cty.ParseNumberVal(n.Value); err == nil {
				return v, nil
			}
			return cty.NumberFloatVal(f), nil
		default:
			return cty.StringVal(n.Value), nil
		}
	}
	return cty.NilVal, fmt.Errorf("unsupported YAML node kind %v", n.Kind)
}

var fileFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "path", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		b, err := os.ReadFile(args[0].AsString())
		if err != nil {
			return cty.NilVal, fmt.Errorf("no file exists at %q", args[0].AsString())
		}
		if !utf8.Valid(b) {
			return cty.NilVal, fmt.Errorf("contents of %q are not valid UTF-8", args[0].AsString())
		}
		return cty.StringVal(string(b)), nil
	},
})

// buildOutputs are the files `make lambdas` writes: a configuration may hash one before it
// is built here (the walkthrough builds them before apply), but no other missing file.
var buildOutputs = func() map[string]bool {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		return nil
	}
	field := func(name string) []string {
		m := regexp.MustCompile(`(?m)^` + name + `\s*:=\s*(.+)$`).FindSubmatch(mk)
		if m == nil {
			return nil
		}
		return strings.Fields(string(m[1]))
	}
	out := map[string]bool{}
	for _, fn := range field("LAMBDAS") {
		for _, arch := range field("LAMBDA_ARCHS") {
			abs, _ := filepath.Abs(filepath.Join("..", "lambdas", "dist", fn+"-"+arch+".zip"))
			out[abs] = true
		}
	}
	return out
}()

var filebase64sha256Func = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "path", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		b, err := os.ReadFile(args[0].AsString())
		if err != nil {
			if abs, _ := filepath.Abs(args[0].AsString()); buildOutputs[abs] {
				return cty.UnknownVal(cty.String), nil
			}
			return cty.NilVal, fmt.Errorf("no file exists at %q, and `make lambdas` does not write one there", args[0].AsString())
		}
		sum := sha256.Sum256(b)
		return cty.StringVal(base64.StdEncoding.EncodeToString(sum[:])), nil
	},
})

// templatefileFunc is Terraform's templatefile: the template may use only the variables it is
// given and every function but templatefile itself.
func templatefileFunc() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}, {Name: "vars", Type: cty.DynamicPseudoType, AllowUnknown: true, AllowDynamicType: true}},
		Type:   function.StaticReturnType(cty.DynamicPseudoType),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := args[0].AsString()
			src, err := os.ReadFile(path)
			if err != nil {
				return cty.NilVal, fmt.Errorf("no file exists at %q", path)
			}
			expr, diags := hclsyntax.ParseTemplate(src, path, hcl.Pos{Line: 1, Column: 1})
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			vars := args[1]
			if ty := vars.Type(); !ty.IsObjectType() && !ty.IsMapType() && ty != cty.DynamicPseudoType {
				return cty.NilVal, errors.New("invalid vars value: must be a map")
			}
			if !vars.IsKnown() {
				return cty.DynamicVal, nil
			}
			given := vars.AsValueMap()
			for _, tr := range expr.Variables() {
				if _, ok := given[tr.RootName()]; !ok {
					return cty.NilVal, fmt.Errorf("vars map does not contain key %q, referenced at %s", tr.RootName(), tr.SourceRange())
				}
			}
			v, diags := expr.Value(&hcl.EvalContext{Variables: given, Functions: planFunctions(false)})
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			return v, nil
		},
	})
}

// ---------------------------------------------------------------------------------------
// Evaluation

// planRun is one root configuration being planned: its problems, and what the dependency
// checks need (the graph, and the values of resource arguments).
type planRun struct {
	root     *tfConfig
	problems []string
	graph    *depGraph
	// args holds, per graph node, the values its top-level arguments and nested block
	// attributes (as block.attr) took in every instance.
	args map[string]map[string][]cty.Value
	// known gives a resource or data source (by address, like data.aws_region.current, in
	// every module) a known value instead of an unknown one: what a test needs to see a value
	// built from it, such as a policy naming the region and account, as a real plan would.
	known map[string]cty.Value
}

func (r *planRun) problem(rng hcl.Range, format string, a ...any) {
	r.problems = append(r.problems, fmt.Sprintf("%s: %s", rng, fmt.Sprintf(format, a...)))
}

func (r *planRun) diags(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		where := "?"
		if d.Subject != nil {
			where = d.Subject.String()
		}
		r.problems = append(r.problems, fmt.Sprintf("%s: %s: %s", where, d.Summary, d.Detail))
	}
}

func (r *planRun) record(node, arg string, v cty.Value) {
	if r.args[node] == nil {
		r.args[node] = map[string][]cty.Value{}
	}
	r.args[node][arg] = append(r.args[node][arg], v)
}

// modInstance is one instance of a module (one key of a for_each'd module call).
type modInstance struct {
	run      *planRun
	cfg      *tfConfig
	path     string // graph path: module.a.module.b, without instance keys
	vars     map[string]cty.Value
	locals   map[string]cty.Value
	busy     map[string]bool
	children map[string]cty.Value // module call name -> its value as module.<name>
}

func newInstance(run *planRun, cfg *tfConfig, path string, vars map[string]cty.Value) *modInstance {
	return &modInstance{run: run, cfg: cfg, path: path, vars: vars, locals: map[string]cty.Value{}, busy: map[string]bool{},
		children: map[string]cty.Value{}}
}

// eval evaluates an expression in this instance, with extra variables (each, count, self,
// dynamic block iterators).
func (m *modInstance) eval(expr hcl.Expression, extra map[string]cty.Value) cty.Value {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: planFunctions(true)}
	for k, v := range extra {
		ctx.Variables[k] = v
	}
	locals, modules := map[string]cty.Value{}, map[string]cty.Value{}
	resources := map[string]map[string]cty.Value{}
	data := map[string]map[string]cty.Value{}
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		if _, ok := extra[root]; ok {
			continue
		}
		attr := ""
		if len(tr) > 1 {
			if ga, ok := tr[1].(hcl.TraverseAttr); ok {
				attr = ga.Name
			}
		}
		switch root {
		case "var":
			ctx.Variables["var"] = cty.ObjectVal(m.vars)
		case "local":
			if _, ok := m.cfg.locals[attr]; ok {
				locals[attr] = m.local(attr)
			}
		case "module":
			for _, mc := range m.cfg.modules {
				if mc.name == attr {
					modules[attr] = m.module(mc)
				}
			}
		case "path":
			ctx.Variables["path"] = cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(m.cfg.dir),
				"root": cty.StringVal(m.run.root.dir), "cwd": cty.StringVal(".")})
		case "terraform":
			ctx.Variables["terraform"] = cty.ObjectVal(map[string]cty.Value{"workspace": cty.StringVal("default")})
		case "data":
			if len(tr) > 2 {
				typ, name := attr, tr[2].(hcl.TraverseAttr).Name
				for _, res := range m.cfg.resources {
					if res.mode == "data" && res.typ == typ && res.name == name {
						if data[typ] == nil {
							data[typ] = map[string]cty.Value{}
						}
						data[typ][name] = m.resourceValue(res)
					}
				}
			}
		default:
			for _, res := range m.cfg.resources {
				if res.mode == "resource" && res.typ == root && res.name == attr {
					if resources[root] == nil {
						resources[root] = map[string]cty.Value{}
					}
					resources[root][attr] = m.resourceValue(res)
				}
			}
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	ctx.Variables["module"] = cty.ObjectVal(modules)
	dv := map[string]cty.Value{}
	for typ, byName := range data {
		dv[typ] = cty.ObjectVal(byName)
	}
	ctx.Variables["data"] = cty.ObjectVal(dv)
	for typ, byName := range resources {
		ctx.Variables[typ] = cty.ObjectVal(byName)
	}
	v, diags := expr.Value(ctx)
	m.run.diags(diags)
	if diags.HasErrors() {
		return cty.DynamicVal
	}
	return v
}

func (m *modInstance) local(name string) cty.Value {
	if v, ok := m.locals[name]; ok {
		return v
	}
	if m.busy["local."+name] {
		m.run.problem(m.cfg.locals[name].SrcRange, "local.%s refers to itself", name)
		return cty.DynamicVal
	}
	m.busy["local."+name] = true
	v := m.eval(m.cfg.locals[name].Expr, nil)
	m.locals[name] = v
	return v
}

// resourceValue is what a reference to a resource sees at plan time: its instances (one,
// a tuple by count, an object by for_each key when the keys are known), each unknown.
func (m *modInstance) resourceValue(res *tfResource) cty.Value {
	if v, ok := m.run.known[res.addr()]; ok && res.block.Body.Attributes["count"] == nil && res.block.Body.Attributes["for_each"] == nil {
		return v
	}
	mark := applyMark
	if res.mode == "data" {
		mark = dataMark
	}
	unknown := cty.DynamicVal.Mark(mark)
	keys, counted, known := m.expansion(res.block, res.addr())
	switch {
	case !known:
		return unknown
	case counted:
		vs := make([]cty.Value, len(keys))
		for i := range vs {
			vs[i] = unknown
		}
		return cty.TupleVal(vs)
	case res.block.Body.Attributes["for_each"] != nil:
		vs := map[string]cty.Value{}
		for _, k := range keys {
			vs[k.key] = unknown
		}
		return cty.ObjectVal(vs)
	}
	return unknown
}

// instanceKey is one instance of a counted or for_each'd block: the each or count object.
type instanceKey struct {
	key   string
	extra map[string]cty.Value
}

// expansion evaluates a block's count or for_each as Terraform does at plan time. keys is nil
// for a block with neither; known is false when the keys cannot be known (then one instance
// with an unknown key is checked).
func (m *modInstance) expansion(b *hclsyntax.Block, what string) (keys []instanceKey, counted, known bool) {
	if a := b.Body.Attributes["count"]; a != nil {
		v := m.eval(a.Expr, nil)
		if !v.IsKnown() || v.IsNull() {
			if v.IsNull() {
				m.run.problem(a.SrcRange, "%s: count is null", what)
			} else if v.HasMark(applyMark) {
				m.run.problem(a.SrcRange, "%s: count depends on resource attributes that cannot be determined until apply", what)
			}
			return []instanceKey{{key: "?", extra: map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": cty.UnknownVal(cty.Number)})}}}, true, false
		}
		v, _ = v.Unmark()
		n, err := convert.Convert(v, cty.Number)
		if err != nil {
			m.run.problem(a.SrcRange, "%s: count is not a number", what)
			return nil, true, false
		}
		c, acc := n.AsBigFloat().Int64()
		if acc != 0 || c < 0 {
			m.run.problem(a.SrcRange, "%s: count must be a whole number, at least 0", what)
			return nil, true, false
		}
		keys = []instanceKey{} // known, perhaps none
		for i := range c {
			keys = append(keys, instanceKey{key: strconv.FormatInt(i, 10), extra: map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(i)})}})
		}
		return keys, true, true
	}
	a := b.Body.Attributes["for_each"]
	if a == nil {
		return nil, false, true
	}
	v := m.eval(a.Expr, nil)
	ty := v.Type()
	unknownEach := []instanceKey{{key: "?", extra: map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{
		"key": cty.UnknownVal(cty.String), "value": cty.DynamicVal})}}}
	if ty == cty.DynamicPseudoType {
		if v.HasMark(applyMark) {
			m.run.problem(a.SrcRange, "%s: for_each depends on resource attributes that cannot be determined until apply", what)
		}
		return unknownEach, false, false
	}
	if !v.IsKnown() || (ty.IsSetType() && !v.IsWhollyKnown()) {
		if v.HasMark(applyMark) || (ty.IsSetType() && v.ContainsMarked()) {
			m.run.problem(a.SrcRange, "%s: for_each keys depend on resource attributes that cannot be determined until apply", what)
		}
		return unknownEach, false, false
	}
	if !(ty.IsMapType() || ty.IsObjectType() || (ty.IsSetType() && ty.ElementType() == cty.String)) {
		m.run.problem(a.SrcRange, "%s: for_each must be a map, or a set of strings; it is %s", what, ty.FriendlyName())
		return unknownEach, false, false
	}
	if v.IsNull() {
		m.run.problem(a.SrcRange, "%s: for_each is null", what)
		return unknownEach, false, false
	}
	v, _ = v.Unmark()
	keys = []instanceKey{} // known, perhaps none
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		if ty.IsSetType() {
			k, _ = k.Unmark()
			ev = k
		}
		keys = append(keys, instanceKey{key: k.AsString(), extra: map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": k, "value": ev})}})
	}
	return keys, false, true
}

// module returns a module call's value (its outputs, by instance key when for_each'd),
// checking each instance's configuration the first time.
func (m *modInstance) module(mc *tfModuleCall) cty.Value {
	if v, ok := m.children[mc.name]; ok {
		return v
	}
	if m.busy["module."+mc.name] {
		m.run.problem(mc.block.DefRange(), "module.%s depends on itself", mc.name)
		return cty.DynamicVal
	}
	m.busy["module."+mc.name] = true
	keys, counted, known := m.expansion(mc.block, "module."+mc.name)
	if keys == nil {
		keys = []instanceKey{{}}
	}
	outs := map[string]cty.Value{}
	var list []cty.Value
	for _, k := range keys {
		child := m.childInstance(mc, k.extra)
		// What each instance was given, as var.<name> of the call's node: a test can follow a
		// setting into a module whose resources are not known at plan time.
		for name, v := range child.vars {
			m.run.record(m.path+"module."+mc.name, "var."+name, v)
		}
		child.check()
		o := map[string]cty.Value{}
		for name, b := range child.cfg.outputs {
			o[name] = child.eval(b.Body.Attributes["value"].Expr, nil)
		}
		outs[k.key] = cty.ObjectVal(o)
		list = append(list, cty.ObjectVal(o))
	}
	var v cty.Value
	switch {
	case !known:
		v = cty.DynamicVal
	case counted:
		v = cty.TupleVal(list)
	case mc.block.Body.Attributes["for_each"] != nil:
		v = cty.ObjectVal(outs)
	default:
		v = outs[""]
	}
	m.children[mc.name] = v
	return v
}

// childInstance evaluates a module call's arguments into the child's variables, as Terraform
// does: unknown arguments and missing required variables are errors, values are converted to
// the variable's type with its optional attributes' defaults, and validations run.
func (m *modInstance) childInstance(mc *tfModuleCall, extra map[string]cty.Value) *modInstance {
	given := map[string]cty.Value{}
	for name, a := range mc.block.Body.Attributes {
		switch name {
		case "source", "version", "providers", "count", "for_each", "depends_on":
			continue
		}
		if _, ok := mc.child.variables[name]; !ok {
			m.run.problem(a.SrcRange, "module.%s: unsupported argument %q (no such variable in %s)", mc.name, name, mc.child.dir)
			continue
		}
		given[name] = m.eval(a.Expr, extra)
	}
	return newInstance(m.run, mc.child, m.path+"module."+mc.name+".", m.run.inputs(mc.child, given, mc.block.DefRange()))
}

// inputs turns given values into a module's variables: defaults for the rest, unknown for a
// required variable without a value (only a root checked on its defaults has those).
func (r *planRun) inputs(cfg *tfConfig, given map[string]cty.Value, where hcl.Range) map[string]cty.Value {
	vars := map[string]cty.Value{}
	for name, v := range cfg.variables {
		val, ok := given[name]
		switch {
		case ok && val.IsNull() && !v.nullable && v.def != cty.NilVal:
			vars[name] = v.def
			continue
		case !ok && v.def != cty.NilVal:
			vars[name] = v.def
			continue
		case !ok:
			if cfg != r.root {
				r.problem(where, "%s: required variable %q is not set", cfg.dir, name)
			}
			vars[name] = cty.UnknownVal(v.typ)
			continue
		}
		cv, err := v.convert(val)
		if err != nil {
			r.problem(where, "%s: variable %q: %v", cfg.dir, name, err)
			cv = cty.UnknownVal(v.typ)
		}
		if cv.IsNull() && !v.nullable {
			r.problem(where, "%s: variable %q must not be null", cfg.dir, name)
		}
		vars[name] = cv
	}
	return vars
}

// check evaluates everything Terraform evaluates at plan time in this instance: variable
// validations, locals, every resource's and data source's arguments (per instance, dynamic
// blocks expanded, preconditions), module calls (recursively), outputs and provider blocks.
func (m *modInstance) check() {
	for _, v := range sortedVars(m.cfg) {
		for _, b := range v.block.Body.Blocks {
			if b.Type == "validation" {
				m.condition(b, nil, "variable "+v.name)
			}
		}
	}
	for name := range m.cfg.locals {
		m.local(name)
	}
	for _, res := range m.cfg.resources {
		keys, _, _ := m.expansion(res.block, res.addr())
		if keys == nil {
			keys = []instanceKey{{}}
		}
		for _, k := range keys {
			extra := map[string]cty.Value{"self": cty.DynamicVal.Mark(applyMark)}
			for n, v := range k.extra {
				extra[n] = v
			}
			m.body(res.block.Body, extra, m.path+res.addr(), "", res.addr())
		}
	}
	for _, mc := range m.cfg.modules {
		m.module(mc)
	}
	for name, b := range m.cfg.outputs {
		m.eval(b.Body.Attributes["value"].Expr, nil)
		for _, c := range b.Body.Blocks {
			if c.Type == "precondition" {
				m.condition(c, nil, "output "+name)
			}
		}
	}
	if m.path == "" {
		for name, b := range m.cfg.providers {
			m.body(b.Body, nil, "provider."+name, "", "provider "+name)
		}
	}
}

func sortedVars(c *tfConfig) []*tfVariable {
	var vs []*tfVariable
	for _, v := range c.variables {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].name < vs[j].name })
	return vs
}

// body evaluates a resource, data or provider body: attributes, nested and dynamic blocks,
// and lifecycle conditions (not ignore_changes, which names attributes rather than reading
// them).
func (m *modInstance) body(b *hclsyntax.Body, extra map[string]cty.Value, node, prefix, what string) {
	for name, a := range b.Attributes {
		switch name {
		case "count", "for_each", "depends_on", "provider":
			if prefix == "" {
				continue
			}
		}
		m.run.record(node, prefix+name, m.eval(a.Expr, extra))
	}
	for _, blk := range b.Blocks {
		switch blk.Type {
		case "lifecycle":
			if prefix != "" {
				break
			}
			for _, c := range blk.Body.Blocks {
				if c.Type == "precondition" || c.Type == "postcondition" {
					m.condition(c, extra, what)
				}
			}
			continue
		case "dynamic":
			iter := blk.Labels[0]
			if a := blk.Body.Attributes["iterator"]; a != nil {
				iter = hcl.ExprAsKeyword(a.Expr)
			}
			fe := m.eval(blk.Body.Attributes["for_each"].Expr, extra)
			var content *hclsyntax.Block
			for _, c := range blk.Body.Blocks {
				if c.Type == "content" {
					content = c
				}
			}
			if content == nil {
				m.run.problem(blk.DefRange(), "%s: dynamic %q has no content block", what, blk.Labels[0])
				continue
			}
			with := func(k, v cty.Value) map[string]cty.Value {
				e := map[string]cty.Value{iter: cty.ObjectVal(map[string]cty.Value{"key": k, "value": v})}
				for n, x := range extra {
					e[n] = x
				}
				return e
			}
			fe, _ = fe.Unmark()
			if !fe.IsKnown() || fe.IsNull() {
				if fe.IsNull() {
					m.run.problem(blk.DefRange(), "%s: dynamic %q for_each is null", what, blk.Labels[0])
				}
				m.body(content.Body, with(cty.DynamicVal, cty.DynamicVal), node, prefix+blk.Labels[0]+".", what)
				continue
			}
			if !fe.CanIterateElements() {
				m.run.problem(blk.DefRange(), "%s: dynamic %q for_each is a %s, not a collection", what, blk.Labels[0], fe.Type().FriendlyName())
				continue
			}
			for it := fe.ElementIterator(); it.Next(); {
				k, v := it.Element()
				m.body(content.Body, with(k, v), node, prefix+blk.Labels[0]+".", what)
			}
			continue
		}
		m.body(blk.Body, extra, node, prefix+blk.Type+".", what)
	}
}

// condition checks a validation, precondition or postcondition: a condition known to be
// false is the error Terraform would report with its error_message. OpenTofu evaluates the
// error_message whether or not the condition holds, so it must evaluate (not interpolate a
// null, say) in every case.
func (m *modInstance) condition(b *hclsyntax.Block, extra map[string]cty.Value, what string) {
	c := b.Body.Attributes["condition"]
	if c == nil {
		m.run.problem(b.DefRange(), "%s: %s without a condition", what, b.Type)
		return
	}
	var msg cty.Value = cty.StringVal("(no error_message)")
	if a := b.Body.Attributes["error_message"]; a != nil {
		msg = m.eval(a.Expr, extra)
	}
	v := m.eval(c.Expr, extra)
	v, _ = v.UnmarkDeep()
	if !v.IsKnown() {
		return
	}
	if v.IsNull() || v.Type() != cty.Bool {
		m.run.problem(c.SrcRange, "%s: %s condition is not a bool", what, b.Type)
		return
	}
	if v.False() {
		text := "(error_message unknown)"
		if msg, _ = msg.Unmark(); msg.IsKnown() && !msg.IsNull() && msg.Type() == cty.String {
			text = msg.AsString()
		}
		m.run.problem(c.SrcRange, "%s: %s failed: %s", what, b.Type, text)
	}
}

// ---------------------------------------------------------------------------------------
// Roots and their values

type planCase struct {
	name  string
	dir   string
	tfvar string // a .tfvars file with the values the root is planned with, or ""
}

// planCases: every module on its own with its variables at their defaults (required ones
// unknown), and every root with the values its example tfvars give.
func planCases(t *testing.T) []planCase {
	var cases []planCase
	for _, dir := range roots {
		cases = append(cases, planCase{name: dir + " (defaults)", dir: dir})
		ex, _ := filepath.Glob(filepath.Join(dir, "*.tfvars.example"))
		for _, f := range ex {
			cases = append(cases, planCase{name: dir + " with " + filepath.Base(f), dir: dir, tfvar: f})
		}
	}
	return cases
}

func planRoot(t *testing.T, pc planCase) *planRun {
	t.Helper()
	cfg := loadConfig(t, pc.dir)
	run := &planRun{root: cfg, args: map[string]map[string][]cty.Value{}}
	given := map[string]cty.Value{}
	if pc.tfvar != "" {
		f, diags := hclparse.NewParser().ParseHCLFile(pc.tfvar)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", pc.tfvar, diags)
		}
		attrs, _ := f.Body.JustAttributes()
		for name, a := range attrs {
			if _, ok := cfg.variables[name]; !ok {
				run.problem(a.Range, "%s sets %q, which %s does not declare", pc.tfvar, name, pc.dir)
				continue
			}
			v, diags := a.Expr.Value(nil)
			run.diags(diags)
			given[name] = v
		}
	}
	root := newInstance(run, cfg, "", run.inputs(cfg, given, hcl.Range{Filename: pc.dir}))
	root.check()
	run.graph = buildGraph(cfg)
	return run
}

// TestModulesPlan evaluates every configuration as a plan would, with the AWS and liveagg
// resources' attributes unknown: a function given a null, an unsupported reference, a value
// that does not fit a variable, a failing validation or precondition, for_each or count over
// values known only after apply.
func TestModulesPlan(t *testing.T) {
	for _, pc := range planCases(t) {
		t.Run(pc.name, func(t *testing.T) {
			run := planRoot(t, pc)
			slices.Sort(run.problems)
			for _, p := range slices.Compact(run.problems) {
				t.Error(p)
			}
		})
	}
}

// TestPlanEvaluatorCatches: the evaluator above reports what Terraform reports, on small
// configurations with a known mistake each; a check that never fails proves nothing.
func TestPlanEvaluatorCatches(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"coalesce of a null default", `variable "a" {
  type    = string
  default = null
}
locals { b = coalesce(var.a, "") }`, "no non-null, non-empty-string arguments"},
		{"for_each over apply-time keys", `resource "x_a" "a" {}
resource "x_b" "b" {
  for_each = toset([x_a.a.id])
}`, "cannot be determined until apply"},
		{"output that does not exist", `module "c" {
  source = "./child"
}
locals { d = module.c.nope }`, "Unsupported attribute"},
		{"precondition that fails", `variable "n" {
  type    = number
  default = 0
}
data "x_d" "d" {
  lifecycle {
    precondition {
      condition     = var.n > 0
      error_message = "n must be positive."
    }
  }
}`, "n must be positive"},
		{"a value that does not fit", `module "c" {
  source = "./child"
  n      = "many"
}`, "a number is required"},
		{"unknown function", `locals { a = nosuchfunction(1) }`, "unknown function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tc.src), 0o600))
			must(t, os.MkdirAll(filepath.Join(dir, "child"), 0o755))
			must(t, os.WriteFile(filepath.Join(dir, "child", "main.tf"), []byte(`variable "n" {
  type    = number
  default = 1
}
output "n" { value = var.n }
`), 0o600))
			run := planRoot(t, planCase{name: tc.name, dir: dir})
			if !slices.ContainsFunc(run.problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("want a problem with %q, got %q", tc.want, run.problems)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
