package spec

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field of a spec.
type FieldError struct {
	// Path locates the field, like "aggregations[2].field"; empty for the document itself.
	Path string
	// Msg says what is wrong and what is allowed.
	Msg string
	// Line is the 1-based line in the source document, when known.
	Line int
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem Parse or Validate found: Parse lists the type errors in document
// order, then the rule errors in the order Validate checks the fields. It is the error type
// they return, so callers (the provider's diagnostics, the CLI) can point at each field.
type Errors []FieldError

func (es Errors) Error() string {
	if len(es) == 1 {
		return es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(es))
	for _, e := range es {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

func (es *Errors) add(path, format string, args ...any) {
	*es = append(*es, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (es *Errors) addLine(path string, line int, format string, args ...any) {
	*es = append(*es, FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Line: line})
}

func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func oneOf(allowed []string) string {
	return "one of " + strings.Join(allowed, ", ")
}
