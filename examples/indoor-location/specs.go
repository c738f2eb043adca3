// Package indoorlocation carries the indoor-location example's specs into Go, so the demo, the
// tests and the benchmarks run exactly what the example declares rather than copies of it.
package indoorlocation

import _ "embed"

// The pipeline's specs, level by level (see README.md).
var (
	//go:embed level1.yaml
	Level1 []byte
	//go:embed level2-zone.yaml
	Level2Zone []byte
	//go:embed level2-floor.yaml
	Level2Floor []byte
	//go:embed level2-site.yaml
	Level2Site []byte
	//go:embed level3-org.yaml
	Level3Org []byte
)

// Specs lists every spec of the pipeline, lower levels first.
func Specs() [][]byte { return [][]byte{Level1, Level2Zone, Level2Floor, Level2Site, Level3Org} }
