// Package indoorlocation carries the indoor-location example's specs into Go, so the demo, the
// tests and the benchmarks run exactly what the example declares rather than copies of it.
package indoorlocation

import _ "embed"

// Level1 is level1.yaml: raw events keyed by device in, rollups per (org, site, zone) out.
//
//go:embed level1.yaml
var Level1 []byte
