package state

import "testing"

// Error messages name window sizes as specs write them; 500ms used to print as "0s".
func TestMsDur(t *testing.T) {
	for _, c := range []struct {
		ms   int64
		want string
	}{{500, "500ms"}, {1500, "1.5s"}, {90_000, "90s"}, {60_000, "1m"}, {3_600_000, "1h"}, {86_400_000, "1d"}} {
		if got := msDur(c.ms); got != c.want {
			t.Errorf("msDur(%d) = %q, want %q", c.ms, got, c.want)
		}
	}
}
