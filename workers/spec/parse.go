package spec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads a spec from YAML or JSON, applies defaults and validates it. On failure the error
// is an Errors listing every problem with its field path and, where the field is in the
// document, its line: the type errors (a scalar where a list belongs, a word where a number
// does, an unknown field) first, then the rule errors of every field that decoded. A type error
// does not stop the rule checks, so an author sees every problem in one run; only a document
// that is not YAML at all stops there.
func Parse(data []byte) (*Spec, error) {
	s, typeErrs, err := decode(data)
	if err != nil {
		return nil, err
	}
	s.ApplyDefaults()
	errs := typeErrs
	if verr := s.Validate(); verr != nil {
		var rule Errors
		if !errors.As(verr, &rule) {
			return nil, verr
		}
		errs = append(errs, withoutUndecoded(rule, typeErrs)...)
	}
	if len(errs) == 0 {
		return s, nil
	}
	locate(data, errs)
	return nil, errs
}

// withoutUndecoded drops the rule errors about fields that had a type error: such a field holds
// its zero value, so a rule error about it ("windows: required" after "windows: must be a list")
// would be a second, misleading report of the same problem.
func withoutUndecoded(rule, typeErrs Errors) Errors {
	var out Errors
	for _, r := range rule {
		covered := false
		for _, t := range typeErrs {
			if within(r.Path, t.Path) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, r)
		}
	}
	return out
}

// within says whether path is field or one of its elements or subfields ("" is the whole
// document, so everything is within it).
func within(path, field string) bool {
	if field == "" || path == field {
		return true
	}
	rest, ok := strings.CutPrefix(path, field)
	return ok && (rest[0] == '.' || rest[0] == '[')
}

// locate fills in the line of each error whose path names a field present in the document
// (or, for a missing field, the object that should hold it).
func locate(data []byte, errs Errors) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) != 1 {
		return
	}
	for i := range errs {
		if errs[i].Line == 0 {
			errs[i].Line = lineOf(doc.Content[0], errs[i].Path)
		}
	}
}

// lineOf walks a path like "aggregations[2].field" down the node tree and returns the line of
// the deepest node it reaches.
func lineOf(n *yaml.Node, path string) int {
	line := n.Line
	for path != "" {
		var step string
		step, path, _ = strings.Cut(path, ".")
		name, idx, hasIdx := step, "", false
		if i := strings.IndexByte(step, '['); i >= 0 {
			name, idx, hasIdx = step[:i], strings.Trim(step[i:], "[]"), true
		}
		next := (*yaml.Node)(nil)
		if n.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == name {
					next = n.Content[j+1]
					line = n.Content[j].Line
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if hasIdx {
			k, err := strconv.Atoi(idx)
			if err != nil || n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return line
			}
			n = n.Content[k]
			line = n.Line
		}
	}
	return line
}

// ParseFile is Parse of a file's contents; errors name the file.
func ParseFile(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("spec %s: %w", path, err)
	}
	return s, nil
}

// Decode reads a spec without defaults or validation: strict about unknown fields and types,
// silent about meaning. The provider uses it to report type errors separately from rule errors.
func Decode(data []byte) (*Spec, error) {
	s, typeErrs, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := typeErrs.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// decode is Decode that keeps going: it returns the spec with every field that decoded filled
// in (the others left zero) together with the type errors, so Parse can still check the rules
// of the fields that did decode. err is set only when there is no document to decode at all.
func decode(data []byte) (s *Spec, typeErrs Errors, err error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, Errors{{Msg: "not valid YAML or JSON: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, nil, Errors{{Msg: "more than one document; a spec file holds one spec", Line: extra.Line}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	s = new(Spec)
	decodeNode(root, "", reflect.ValueOf(s).Elem(), &typeErrs)
	return s, typeErrs, nil
}

var durationType = reflect.TypeFor[Duration]()

// decodeNode fills v from n, recording every mismatch with its path instead of stopping at the
// first: a spec author fixes all of them in one pass.
func decodeNode(n *yaml.Node, path string, v reflect.Value, errs *Errors) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an explicit null leaves the zero value, as an omitted field would
	}
	if v.Type() == durationType {
		if n.Kind != yaml.ScalarNode {
			errs.addLine(path, n.Line, "must be a duration (like 30s, 1m, 15m, 1h, 1d)")
			return
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			errs.addLine(path, n.Line, "%v", err)
			return
		}
		v.SetInt(int64(d))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			errs.addLine(path, n.Line, "must be an object with fields %s", strings.Join(fieldNames(v.Type()), ", "))
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			fp := join(path, k.Value)
			if seen[k.Value] {
				errs.addLine(fp, k.Line, "given more than once")
				continue
			}
			seen[k.Value] = true
			idx := fieldIndex(v.Type(), k.Value)
			if idx < 0 {
				errs.addLine(fp, k.Line, "unknown field; allowed here: %s", strings.Join(fieldNames(v.Type()), ", "))
				continue
			}
			decodeNode(val, fp, v.Field(idx), errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			errs.addLine(path, n.Line, "must be a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			decodeNode(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i), errs)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			errs.addLine(path, n.Line, "must be a string")
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			errs.addLine(path, n.Line, "must be a whole number, not %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			errs.addLine(path, n.Line, "must be a number, not %q", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			errs.addLine(path, n.Line, "must be true or false, not %q", n.Value)
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("BUG: spec field %s has unsupported kind %s", path, v.Kind()))
	}
}

func fieldIndex(t reflect.Type, name string) int {
	for i := range t.NumField() {
		if tagName(t.Field(i)) == name {
			return i
		}
	}
	return -1
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func fieldNames(t reflect.Type) []string {
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		names = append(names, tagName(t.Field(i)))
	}
	return names
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// Marshal writes s as YAML with defaults made explicit; Parse(Marshal(s)) equals s.
func Marshal(s *Spec) ([]byte, error) {
	return yaml.Marshal(s)
}
