//go:build integration

package modules_test

import (
	"os/exec"
	"testing"

	"github.com/liveagg/liveagg/infra/local/testenv"
)

// TestTofuFmt: every configuration is formatted as tofu fmt writes it.
func TestTofuFmt(t *testing.T) {
	for _, dir := range []string{".", "../infra/aws", "../examples/indoor-location/terraform", "../provider/examples"} {
		out, err := exec.Command(testenv.Tofu(t), "fmt", "-check", "-recursive", "-diff", dir).CombinedOutput()
		if err != nil {
			t.Errorf("tofu fmt -check %s: %v\n%s", dir, err, out)
		}
	}
}
