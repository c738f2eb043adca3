package tfprovider

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"go.yaml.in/yaml/v3"
)

var segmentRE = regexp.MustCompile(`^([a-z_]+)(?:\[(\d+)\])?$`)

// pathOf turns a dotted path with list indexes ("output[0].key[1]") into an attribute path.
func pathOf(p string) path.Path {
	var out path.Path
	for i, seg := range strings.Split(p, ".") {
		m := segmentRE.FindStringSubmatch(seg)
		if m == nil {
			break
		}
		if i == 0 {
			out = path.Root(m[1])
		} else {
			out = out.AtName(m[1])
		}
		if m[2] != "" {
			n, _ := strconv.Atoi(m[2])
			out = out.AtListIndex(n)
		}
	}
	return out
}

func yamlMarshal(v any) ([]byte, error) { return yaml.Marshal(v) }
