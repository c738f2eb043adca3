package tfprovider

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// Descriptions and validators of enumerated or defaulted attributes are built from the spec
// package's lists and constants, the ones the engine validates and defaults with, so the docs,
// the plan-time checks and the workers cannot disagree about what is allowed.

// code formats a value as Markdown code, as the docs show values a configuration can hold.
func code(v any) string { return fmt.Sprintf("`%v`", v) }

// oneOf lists the allowed values as prose: `a`, `b` or `c`.
func oneOf(vals []string) string {
	cs := make([]string, len(vals))
	for i, v := range vals {
		cs[i] = code(v)
	}
	if len(cs) < 2 {
		return strings.Join(cs, "")
	}
	return strings.Join(cs[:len(cs)-1], ", ") + " or " + cs[len(cs)-1]
}

// allowed is a OneOf validator of the same list, so a value outside it fails at plan time on
// its attribute, before the engine sees the spec.
func allowed(vals []string) []validator.String {
	return []validator.String{stringvalidator.OneOf(vals...)}
}

// float formats a default the way a configuration would write it.
func float(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func floats(fs []float64) string {
	ss := make([]string, len(fs))
	for i, f := range fs {
		ss[i] = code(float(f))
	}
	return strings.Join(ss, ", ")
}

// mib writes a byte count with its size in MiB: `1048576` (1 MiB).
func mib(n int) string { return fmt.Sprintf("%s (%s MiB)", code(n), float(float64(n)/(1<<20))) }

// hllError is HyperLogLog's standard error at a precision, in percent: 1.04/√(2^p).
func hllError(precision int) string {
	return strconv.FormatFloat(104/math.Sqrt(math.Exp2(float64(precision))), 'f', 1, 64)
}

// outputOnly says which output type an output attribute belongs to.
func outputOnly(typ string) string { return "Only for type " + code(typ) + "." }
