// Package gen generates the indoor-location events of examples/indoor-location for the demo, the examples,
// tests and benchmarks: {org, site, building, floor, zone, device, ts, x, y, rssi, dwell_ms}.
//
// Orgs are Zipf-distributed (a few huge orgs carry most of the traffic, which is what makes a
// topic keyed by org skewed), devices belong to one site and wander between its zones, event
// times advance at a configured rate with jitter, and a configured fraction of events are late
// or malformed. The same Config and seed always give the same events, byte for byte, so a run
// can be verified against an independent recomputation and repeated exactly.
package gen

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// Kind says what an event was generated to be.
type Kind uint8

// Kinds of generated events.
const (
	Normal    Kind = iota // a well-formed, on-time event
	Late                  // well-formed, with an event time far behind the stream
	Malformed             // not a valid event (truncated, wrong type or missing field)
)

// Config shapes the generated stream. Zero fields take the defaults in parentheses.
type Config struct {
	Seed              uint64  // random seed (1)
	Orgs              int     // number of orgs (50)
	Zipf              float64 // Zipf exponent of org popularity, > 1 (1.3)
	SitesPerOrg       int     // sites per org (4)
	FloorsPerSite     int     // floors per site, one building per 4 floors (3)
	ZonesPerFloor     int     // zones per floor (5)
	DevicesPerSite    int     // devices per site (40)
	StartMs           int64   // event time of the first event, Unix ms (2026-01-01T00:00:00Z)
	StepMs            float64 // event-time advance per event, ms (1: 1000 events per second)
	JitterMs          int64   // event times are spread by up to ± this, ms (2000)
	LateFraction      float64 // fraction of late events (0)
	LateByMs          int64   // how far behind a late event is, ms (10 minutes)
	MalformedFraction float64 // fraction of malformed events (0)
	MoveProb          float64 // chance a device changes zone at an event (0.05)
	// Uniform picks orgs uniformly instead of by Zipf: benchmarks use it to keep a known
	// number of series live at once.
	Uniform bool
}

func (c *Config) defaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.Orgs, 50)
	def(&c.SitesPerOrg, 4)
	def(&c.FloorsPerSite, 3)
	def(&c.ZonesPerFloor, 5)
	def(&c.DevicesPerSite, 40)
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Zipf <= 1 {
		c.Zipf = 1.3
	}
	if c.StartMs == 0 {
		c.StartMs = 1767225600000
	}
	if c.StepMs <= 0 {
		c.StepMs = 1
	}
	if c.JitterMs == 0 {
		c.JitterMs = 2000
	}
	if c.LateByMs == 0 {
		c.LateByMs = 10 * 60 * 1000
	}
	if c.MoveProb == 0 {
		c.MoveProb = 0.05
	}
}

// Event is one generated location event.
type Event struct {
	Org, Site, Floor, Zone, Device int
	TS                             int64
	X, Y                           float64
	RSSI                           int
	DwellMs                        int
	Kind                           Kind
}

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	c    Config
	r    *rand.Rand
	zipf *rand.Zipf
	zone []uint16 // current zone (floor*ZonesPerFloor+zone) of each device
	n    int64
}

// New returns a generator for c.
func New(c Config) *Generator {
	c.defaults()
	r := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	g := &Generator{
		c:    c,
		r:    r,
		zipf: rand.NewZipf(r, c.Zipf, 1, uint64(c.Orgs-1)),
		zone: make([]uint16, c.Orgs*c.SitesPerOrg*c.DevicesPerSite),
	}
	zones := c.FloorsPerSite * c.ZonesPerFloor
	for i := range g.zone {
		g.zone[i] = uint16(r.IntN(zones))
	}
	return g
}

// Config returns the generator's configuration with defaults applied.
func (g *Generator) Config() Config { return g.c }

// Next generates one event.
func (g *Generator) Next() Event {
	c := &g.c
	var e Event
	if c.Uniform {
		e.Org = g.r.IntN(c.Orgs)
	} else {
		e.Org = int(g.zipf.Uint64())
	}
	e.Site = g.r.IntN(c.SitesPerOrg)
	local := g.r.IntN(c.DevicesPerSite)
	dev := (e.Org*c.SitesPerOrg+e.Site)*c.DevicesPerSite + local
	if g.r.Float64() < c.MoveProb {
		g.zone[dev] = uint16(g.r.IntN(c.FloorsPerSite * c.ZonesPerFloor))
	}
	z := int(g.zone[dev])
	e.Floor, e.Zone = z/c.ZonesPerFloor, z
	e.Device = dev
	base := c.StartMs + int64(float64(g.n)*c.StepMs)
	g.n++
	e.TS = base + g.r.Int64N(2*c.JitterMs+1) - c.JitterMs
	e.X = math.Round(g.r.Float64()*5000) / 100
	e.Y = math.Round(g.r.Float64()*5000) / 100
	e.RSSI = -30 - g.r.IntN(65)
	e.DwellMs = 100 + g.r.IntN(30000)
	switch f := g.r.Float64(); {
	case f < c.MalformedFraction:
		e.Kind = Malformed
	case f < c.MalformedFraction+c.LateFraction:
		e.Kind = Late
		e.TS -= c.LateByMs
	}
	return e
}

// NowMs is the event time the stream has reached (without jitter).
func (g *Generator) NowMs() int64 { return g.c.StartMs + int64(float64(g.n)*g.c.StepMs) }

// AppendJSON appends e as its JSON record to dst. A Malformed event is rendered broken in one of
// several ways, chosen by the event itself so the rendering is deterministic.
func AppendJSON(dst []byte, e Event) []byte {
	start := len(dst)
	dst = append(dst, `{"org":"org-`...)
	dst = appendPadded(dst, e.Org, 4)
	dst = append(dst, `","site":"site-`...)
	dst = appendPadded(dst, e.Site, 2)
	dst = append(dst, `","building":"b-`...)
	dst = strconv.AppendInt(dst, int64(e.Floor/4), 10)
	dst = append(dst, `","floor":`...)
	dst = strconv.AppendInt(dst, int64(e.Floor), 10)
	dst = append(dst, `,"zone":"zone-`...)
	dst = appendPadded(dst, e.Zone, 3)
	dst = append(dst, `","device":"dev-`...)
	dst = appendPadded(dst, e.Device, 8)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, e.TS, 10)
	dst = append(dst, `,"x":`...)
	dst = strconv.AppendFloat(dst, e.X, 'f', -1, 64)
	dst = append(dst, `,"y":`...)
	dst = strconv.AppendFloat(dst, e.Y, 'f', -1, 64)
	dst = append(dst, `,"rssi":`...)
	dst = strconv.AppendInt(dst, int64(e.RSSI), 10)
	dst = append(dst, `,"dwell_ms":`...)
	dst = strconv.AppendInt(dst, int64(e.DwellMs), 10)
	dst = append(dst, '}')
	if e.Kind != Malformed {
		return dst
	}
	switch e.Device % 4 {
	case 0: // truncated
		return dst[:start+(len(dst)-start)/2]
	case 1: // wrong type
		rec := string(dst[start:])
		dst = dst[:start]
		return append(dst, replaceOnce(rec, `"rssi":`, `"rssi":"strong","was":`)...)
	case 2: // missing key field
		rec := string(dst[start:])
		dst = dst[:start]
		return append(dst, replaceOnce(rec, `"org":`, `"organisation":`)...)
	default: // not JSON at all
		return append(dst[:start], "\x00\xffbinary garbage"...)
	}
}

// Key returns the Kafka record key of an event: its device, which spreads devices evenly over
// a raw topic's partitions.
func Key(dst []byte, e Event) []byte {
	dst = append(dst, "dev-"...)
	return appendPadded(dst, e.Device, 8)
}

func appendPadded(dst []byte, v, width int) []byte {
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}
