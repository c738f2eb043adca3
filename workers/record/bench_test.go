package record

import "testing"

// BenchmarkDecode measures extracting the indoor-location fields from a ~200-byte event.
func BenchmarkDecode(b *testing.B) {
	d, err := NewDecoder(testSpec(b, "ms"))
	if err != nil {
		b.Fatal(err)
	}
	r := d.NewRecord()
	in := []byte(`{"org":"org-0042","site":"site-03","building":"b-1","floor":2,"loc":{"zone":"zone-17"},"device":"dev-000123456","ts":1764000000123,"x":12.25,"y":40.5,"rssi":-61,"dwell_ms":2500}`)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(in, logTime, r); err != nil {
			b.Fatal(err)
		}
	}
}
