// Package checkpoint stores each input partition's aggregation state together with the Kafka
// offset it reflects, so that a worker that dies at any moment is replaced by one that restores
// the state, seeks to the offset and replays: nothing lost, nothing counted twice.
//
// Per (spec, topic, partition) a checkpoint is two kinds of object under one folder:
//
//	<spec>/<topic>/<partition>/data/<generation>-<offset>.state        a full state snapshot
//	<spec>/<topic>/<partition>/data/<generation>-<offset>-<n>.base     incremental: a base
//	<spec>/<topic>/<partition>/data/<generation>-<offset>-<n>.delta    incremental: a delta
//	<spec>/<topic>/<partition>/MANIFEST                                  which objects are current
//
// Data objects are immutable. A writer puts the data object first and only then swaps the
// manifest, so a reader never sees a torn checkpoint: the manifest only ever names complete
// objects, and records their size and CRC-32C so a damaged object is detected. The manifest
// keeps the previous checkpoint too, and a reader falls back to it, loudly, when the current
// one is unreadable.
//
// Incremental checkpoints form chains: a base (a whole snapshot) and the deltas written on it,
// each only what changed since the link before. The manifest lists the current chain and the
// previous one (the chain before the newest base), so a restore can always fall back: to the
// links before a damaged delta, and past a damaged base to the previous chain. A chain grows
// until the writer starts a new base; the chain before the previous one is then deleted, by
// the owner whose manifest swap just succeeded, so no object a manifest still names (the one
// any later claim reads) is ever deleted.
//
// Ownership is fenced with conditional writes. Claiming a partition rewrites its manifest with
// the next generation, conditional on the manifest being unchanged since it was read; every
// later save is conditional on the manifest still being the one this owner wrote. A zombie (a
// worker whose partition was reassigned while it was paused or partitioned away) therefore
// cannot overwrite a newer owner's checkpoint: its write fails with ErrFenced.
//
// Backends: s3://bucket/prefix (S3 conditional writes: If-None-Match and If-Match) and
// file:///dir (an exclusive lock per partition plus atomic renames), for local use.
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors documented where they surface.
var (
	// ErrFenced is returned when another owner has claimed the partition since this one did.
	// The caller must stop processing the partition at once: its state is no longer the truth.
	ErrFenced = errors.New("checkpoint: partition claimed by a newer owner")
	// ErrNoCheckpoint is returned by Load when the partition has never been checkpointed.
	ErrNoCheckpoint = errors.New("checkpoint: none stored")
	// ErrCorrupt wraps every problem with a stored object's bytes (size, checksum, JSON).
	ErrCorrupt = errors.New("checkpoint: corrupt object")

	// ErrNotChained is returned by Save for a delta whose parent is not the current chain's
	// last link: the caller's state is not the one the chain describes, and needs a base.
	ErrNotChained = errors.New("checkpoint: delta does not extend the current chain")
	// ErrAbortRestore, wrapped by a Lease.Restore decode error, stops the search for an older
	// point: the state cannot be restored at all (say, the spec changed its shape).
	ErrAbortRestore = errors.New("checkpoint: restore aborted")

	// ErrNoneRestores is returned by Lease.Restore when every stored checkpoint reads and none
	// restores.
	ErrNoneRestores = errors.New("checkpoint: no checkpoint restores")

	errNotFound     = errors.New("not found")
	errPrecondition = errors.New("precondition failed")
)

// Key identifies one partition's checkpoints.
type Key struct {
	Spec      string
	Topic     string
	Partition int32
}

func (k Key) String() string { return fmt.Sprintf("%s/%s/%d", k.Spec, k.Topic, k.Partition) }

func (k Key) dir() string { return path.Join(k.Spec, k.Topic, strconv.Itoa(int(k.Partition))) }

// Checkpoint is one partition's durable state.
type Checkpoint struct {
	// Offset is the next Kafka offset to read: the state reflects every record before it.
	Offset int64
	// EmitSeq is the sink progress: every window emitted with a sequence below it is durable in
	// every sink.
	EmitSeq uint64
	// Sinks is each sink's progress at the checkpoint (a file sink's length, say), by sink name.
	Sinks map[string]string
	// State is the state.Store snapshot.
	State []byte
	// Sources is what a partition reading partials knows of its sources' watermarks (encoded
	// partial.Watermarks), empty for other partitions. It belongs with the state: a replay
	// must close windows from the same knowledge as the run that wrote the checkpoint.
	Sources json.RawMessage
	// Generation is the owner generation that wrote it.
	Generation int64
	// Created is when it was written.
	Created time.Time
	// SpecVersion and Spec are the revision and the YAML document of the spec that wrote the
	// checkpoint (see Lease.SetSpec): a worker on a changed spec carries the state over by
	// comparing the two, without needing the old revision to be stored anywhere else.
	SpecVersion int
	Spec        string
	// Kind is Full (a whole snapshot on its own), Base (a whole snapshot that deltas may follow)
	// or Delta (the changes since the checkpoint before it, which must be the current one).
	Kind Kind
	// Parent, for a Delta, is the checksum (the last four bytes, little-endian) of the state
	// it applies to: Save refuses a delta that does not extend the current chain.
	Parent uint32
}

// Kind is what a checkpoint's state holds.
type Kind string

// Kinds of checkpoint; an empty Kind is Full.
const (
	Full  Kind = ""
	Base  Kind = "base"
	Delta Kind = "delta"
)

// Entry describes a checkpoint in the manifest.
type Entry struct {
	Object     string            `json:"object"`
	Offset     int64             `json:"offset"`
	EmitSeq    uint64            `json:"emit_seq"`
	Sinks      map[string]string `json:"sinks,omitempty"`
	Sources    json.RawMessage   `json:"sources,omitempty"`
	Size       int64             `json:"size"`
	CRC32C     uint32            `json:"crc32c"`
	Generation int64             `json:"generation"`
	Created    time.Time         `json:"created"`
	// SpecVersion and Spec: see Checkpoint. Absent in checkpoints written before specs had
	// versions.
	SpecVersion int    `json:"spec_version,omitempty"`
	Spec        string `json:"spec,omitempty"`
	// Kind and Link are set for incremental checkpoints: Link is the state's own checksum
	// (its last four bytes), which the next delta names as its parent.
	Kind Kind   `json:"kind,omitempty"`
	Link uint32 `json:"link,omitempty"`
}

// Manifest is the pointer object of one partition.
type Manifest struct {
	Version    int    `json:"version"`
	Generation int64  `json:"generation"`
	Owner      string `json:"owner"`
	// Current is the newest checkpoint (the last link of Chain, if there is one) and Previous
	// the one a restore falls back to (the last link of PrevChain).
	Current  *Entry `json:"current,omitempty"`
	Previous *Entry `json:"previous,omitempty"`
	// Chain is the current incremental chain, its base first, and PrevChain the chain before
	// the newest base; both empty while checkpoints are full ones.
	Chain     []Entry `json:"chain,omitempty"`
	PrevChain []Entry `json:"previous_chain,omitempty"`
	// Failure is the partition's last failure at one record, kept until a checkpoint passes
	// that record.
	Failure *Failure `json:"failure,omitempty"`
}

// Failure records that owners of a partition failed while handling the record at Offset, so a
// later owner can tell a record that fails every time (a poison record) from a passing fault.
// It lives in the manifest because that is what every owner reads at claim, and because only
// the owner holding the lease may write it.
type Failure struct {
	Offset int64 `json:"offset"`
	// Count is how many owners in a row failed at Offset.
	Count int `json:"count"`
	// Phase is what the owner was doing: "apply" (decoding or aggregating the record) or
	// "emit" (writing the windows the record closed).
	Phase string    `json:"phase"`
	Error string    `json:"error"`
	Last  time.Time `json:"last"`
}

// Manifest versions: 2 adds the chains of incremental checkpoints. A manifest is written as
// version 1 while it names full checkpoints only, so that builds reading version 1 only still
// read it; builds that do not know chains refuse version 2 rather than drop its chains.
const (
	manifestVersion  = 1
	manifestVersion2 = 2
)

// Chains returns the current and the previous chain of the manifest, each oldest link first:
// for full checkpoints, the current and the previous checkpoint alone.
func (m *Manifest) Chains() (cur, prev []Entry) {
	cur, prev = m.Chain, m.PrevChain
	if cur == nil && m.Current != nil {
		cur = []Entry{*m.Current}
	}
	if prev == nil && m.Previous != nil {
		prev = []Entry{*m.Previous}
	}
	return cur, prev
}

// setChains makes cur and prev the manifest's chains, and its version the lowest that holds
// them.
func (m *Manifest) setChains(cur, prev []Entry) {
	m.Current, m.Previous, m.Chain, m.PrevChain = nil, nil, nil, nil
	if len(cur) > 0 {
		e := cur[len(cur)-1]
		m.Current = &e
	}
	if len(prev) > 0 {
		e := prev[len(prev)-1]
		m.Previous = &e
	}
	incremental := false
	for _, e := range slices.Concat(cur, prev) {
		incremental = incremental || e.Kind != Full
	}
	if incremental {
		m.Chain, m.PrevChain = cur, prev
	}
	m.Version = m.version()
}

func (m *Manifest) version() int {
	if len(m.Chain)+len(m.PrevChain) > 0 {
		return manifestVersion2
	}
	return manifestVersion
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blobs is what a backend provides: whole-object reads and writes, one of them conditional.
type blobs interface {
	// get returns an object and its version tag, or errNotFound.
	get(ctx context.Context, name string) ([]byte, string, error)
	// put writes an object unconditionally (data objects have unique names).
	put(ctx context.Context, name string, data []byte) error
	// putIf writes an object if its current tag is ifTag ("" means: if it does not exist), and
	// returns the new tag, or errPrecondition.
	putIf(ctx context.Context, name string, data []byte, ifTag string) (string, error)
	// remove deletes an object of size bytes (-1: unknown), with what the backend stored it
	// as; deleting a missing object is not an error.
	remove(ctx context.Context, name string, size int64) error
	// list returns the names under a prefix.
	list(ctx context.Context, prefix string) ([]string, error)
	location() string
}

// Store is a checkpoint store at one location.
type Store struct {
	b      blobs
	s3     S3API
	log    *slog.Logger
	onFall func(Key, error)
	inc    *Incremental
}

// Incremental is the chain rule of incremental checkpoints: a writer adds deltas to a base
// until one of the limits is reached, then writes a new base. The limits bound what a restore
// reads (the base and at most MaxDeltas deltas adding up to at most about BaseRatio of it) and
// how long the previous chain is kept.
type Incremental struct {
	// BaseRatio starts a new base once the deltas since the base add up to this fraction of
	// its size.
	BaseRatio float64
	// BaseInterval starts a new base once the base is this old (0: never by age).
	BaseInterval time.Duration
	// MaxDeltas starts a new base after this many deltas.
	MaxDeltas int
}

// DefaultIncremental is the chain rule the worker configuration defaults to.
var DefaultIncremental = Incremental{BaseRatio: 0.5, BaseInterval: 30 * time.Minute, MaxDeltas: 200}

// NeedBase reports whether a chain whose base has baseBytes, with deltas deltas of deltaBytes
// in all and a base written at baseAt, should start over with a new base.
func (r Incremental) NeedBase(baseBytes, deltaBytes int64, deltas int, baseAt, now time.Time) bool {
	return float64(deltaBytes) >= r.BaseRatio*float64(baseBytes) ||
		(r.MaxDeltas > 0 && deltas >= r.MaxDeltas) ||
		(r.BaseInterval > 0 && now.Sub(baseAt) >= r.BaseInterval)
}

// WithIncremental makes writers of this store checkpoint incrementally, with this chain rule
// (default: full checkpoints). Readers read both kinds either way.
func WithIncremental(r Incremental) Option { return func(s *Store) { s.inc = &r } }

// Incremental returns the store's chain rule, and false when writers take full checkpoints.
func (s *Store) Incremental() (Incremental, bool) {
	if s.inc == nil {
		return Incremental{}, false
	}
	return *s.inc, true
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger for fallbacks and fencing (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithFallbackHook is called whenever a load falls back past an unreadable checkpoint, for
// metrics (default: none).
func WithFallbackHook(f func(Key, error)) Option { return func(s *Store) { s.onFall = f } }

// WithS3Client makes s3:// locations use this client (default: one built from the AWS default
// configuration by the caller; Open fails for s3:// without it).
func WithS3Client(c S3API) Option { return func(s *Store) { s.s3 = c } }

// Open returns the store at a location: s3://bucket/prefix or file:///dir (or a plain path).
func Open(location string, opts ...Option) (*Store, error) {
	s := &Store{log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("checkpoint location %q: %w", location, err)
	}
	switch u.Scheme {
	case "s3":
		if s.s3 == nil {
			return nil, fmt.Errorf("checkpoint location %s: no S3 client configured", location)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("checkpoint location %q: no bucket", location)
		}
		s.b = &s3Blobs{cl: s.s3, bucket: u.Host, prefix: strings.Trim(u.Path, "/")}
	case "file", "":
		dir := u.Path
		if u.Scheme == "" {
			dir = location
		}
		if dir == "" {
			return nil, fmt.Errorf("checkpoint location %q: no folder", location)
		}
		fb, err := newFileBlobs(dir)
		if err != nil {
			return nil, err
		}
		s.b = fb
	default:
		return nil, fmt.Errorf("checkpoint location %q: scheme %q is not s3 or file", location, u.Scheme)
	}
	return s, nil
}

// Location is where the store keeps its objects.
func (s *Store) Location() string { return s.b.location() }
