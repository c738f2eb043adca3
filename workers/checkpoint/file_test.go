package checkpoint

import (
	"strings"
	"testing"
)

func TestFileStore(t *testing.T) {
	runSuite(t, func(t *testing.T) *Store {
		s, err := Open("file://" + t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestFileStoreChains(t *testing.T) {
	runChainSuite(t, func(t *testing.T) *Store {
		s, err := Open("file://" + t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenRejectsBadLocations(t *testing.T) {
	for _, loc := range []string{"s3://bucket/prefix", "gs://bucket", "s3:///nobucket", "file://"} {
		if _, err := Open(loc); err == nil {
			t.Errorf("Open(%q) succeeded", loc)
		} else if !strings.Contains(err.Error(), "checkpoint location") {
			t.Errorf("Open(%q) error %q does not say which location", loc, err)
		}
	}
}
