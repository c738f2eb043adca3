package checkpoint

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lease is one owner's claim on a partition. Saves through it succeed only while no newer owner
// has claimed the partition.
type Lease struct {
	s     *Store
	key   Key
	owner string
	gen   int64
	tag   string // version tag of the manifest this owner wrote last
	man   Manifest
	// specVersion and spec stamp every save (SetSpec).
	specVersion int
	spec        string
	saves       int // incremental objects written, to name each uniquely
	// fallback is the point Restore fell back to (its links), when it was not the newest: the
	// next base or full checkpoint keeps it as the previous chain, rather than the damaged one.
	fallback []Entry
}

// SetSpec makes every later save record the spec revision and document the owner runs, unless
// the checkpoint names its own.
func (l *Lease) SetSpec(version int, doc string) { l.specVersion, l.spec = version, doc }

// Claim makes owner the partition's owner: it rewrites the manifest with the next generation,
// conditional on it being unchanged since read, so any earlier owner's later saves fail with
// ErrFenced. Concurrent claims are resolved by the same condition: one wins, the other retries
// and then wins with a higher generation, fencing the first.
func (s *Store) Claim(ctx context.Context, key Key, owner string) (*Lease, error) {
	name := path.Join(key.dir(), "MANIFEST")
	for attempt := 0; ; attempt++ {
		man, tag, err := s.readManifest(ctx, key)
		if err != nil && !errors.Is(err, errNotFound) {
			return nil, err
		}
		man.Version = man.version()
		man.Generation++
		man.Owner = owner
		body, err := json.Marshal(man)
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", key, err)
		}
		newTag, err := s.b.putIf(ctx, name, body, tag)
		if errors.Is(err, errPrecondition) && attempt < 10 {
			continue // someone wrote between our read and write; read again
		}
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", key, err)
		}
		return &Lease{s: s, key: key, owner: owner, gen: man.Generation, tag: newTag, man: man}, nil
	}
}

// Generation is the lease's generation: higher than any earlier owner's.
func (l *Lease) Generation() int64 { return l.gen }

// Manifest returns the manifest as of the claim or the last save.
func (l *Lease) Manifest() Manifest { return l.man }

// Save writes cp as the partition's current checkpoint, keeping the current one as previous.
// The data object goes first; the manifest swap is conditional on this lease still owning the
// partition. It returns ErrFenced if it does not, and then nothing visible has changed.
//
// A Delta extends the current chain and must name its last link as its Parent. A Base starts a
// new chain: the current one becomes the previous chain, and the objects of the one before are
// deleted (and any data object an earlier generation left that the new manifest does not name),
// once the manifest swap has succeeded. A Full checkpoint is a chain of one.
func (l *Lease) Save(ctx context.Context, cp Checkpoint) (Entry, error) {
	cur, prev := l.man.Chains()
	var obj string
	switch cp.Kind {
	case Full:
		obj = path.Join(l.key.dir(), "data", fmt.Sprintf("%016d-%020d.state", l.gen, cp.Offset))
	case Base, Delta:
		if cp.Kind == Delta && (len(cur) == 0 || cur[len(cur)-1].Kind == Full || cur[len(cur)-1].Link != cp.Parent) {
			return Entry{}, fmt.Errorf("save %s: %w", l.key, ErrNotChained)
		}
		if len(cp.State) < 4 {
			return Entry{}, fmt.Errorf("save %s: a %s state of %d bytes has no checksum", l.key, cp.Kind, len(cp.State))
		}
		l.saves++
		obj = path.Join(l.key.dir(), "data", fmt.Sprintf("%016d-%020d-%06d.%s", l.gen, cp.Offset, l.saves, cp.Kind))
	default:
		return Entry{}, fmt.Errorf("save %s: unknown checkpoint kind %q", l.key, cp.Kind)
	}
	if err := l.s.b.put(ctx, obj, cp.State); err != nil {
		return Entry{}, fmt.Errorf("save %s: write state: %w", l.key, err)
	}
	created := cp.Created
	if created.IsZero() {
		created = time.Now().UTC()
	}
	e := Entry{
		Object: obj, Offset: cp.Offset, EmitSeq: cp.EmitSeq, Sinks: cp.Sinks, Sources: cp.Sources, Size: int64(len(cp.State)),
		CRC32C: crc32.Checksum(cp.State, castagnoli), Generation: l.gen, Created: created, Kind: cp.Kind,
		SpecVersion: cp.SpecVersion, Spec: cp.Spec,
	}
	if e.Spec == "" {
		e.SpecVersion, e.Spec = l.specVersion, l.spec
	}
	if cp.Kind != Full {
		e.Link = binary.LittleEndian.Uint32(cp.State[len(cp.State)-4:])
	}
	man := l.man
	if man.Failure != nil && cp.Offset > man.Failure.Offset {
		man.Failure = nil // the record that failed is behind the new checkpoint
	}
	newCur, newPrev := []Entry{e}, cur
	switch {
	case cp.Kind == Delta:
		newCur, newPrev = append(slices.Clone(cur), e), prev
	case l.fallback != nil:
		// The restore fell back past damage: keep the point it restored, which is known to
		// restore, as the fallback, and let the damaged links go.
		newPrev = l.fallback
	case len(cur) == 1 && cur[0].Object == obj:
		newPrev = prev // a full checkpoint rewritten in place: the previous one stays
	}
	man.setChains(newCur, newPrev)
	tag, err := l.putManifest(ctx, man)
	if errors.Is(err, ErrFenced) {
		// Our state object is orphaned; the new owner's manifest never names it.
		_ = l.s.b.remove(ctx, obj, int64(len(cp.State)))
		cur, _, rerr := l.s.readManifest(ctx, l.key)
		if rerr == nil {
			l.s.log.Warn("checkpoint save refused: partition claimed by a newer owner",
				"partition", l.key.String(), "our_generation", l.gen, "their_generation", cur.Generation, "their_owner", cur.Owner)
		}
		return Entry{}, fmt.Errorf("save %s generation %d: %w", l.key, l.gen, ErrFenced)
	}
	if err != nil {
		_ = l.s.b.remove(ctx, obj, int64(len(cp.State)))
		return Entry{}, fmt.Errorf("save %s: write manifest: %w", l.key, err)
	}
	l.tag, l.man = tag, man
	if cp.Kind == Delta {
		return e, nil
	}
	l.fallback = nil
	// The chain before the previous one is no longer reachable from the manifest.
	keep := map[string]bool{}
	for _, k := range slices.Concat(newCur, newPrev) {
		keep[k.Object] = true
	}
	for _, old := range slices.Concat(prev, cur) {
		if !keep[old.Object] {
			keep[old.Object] = true // once
			if err := l.s.b.remove(ctx, old.Object, old.Size); err != nil {
				l.s.log.Warn("remove stale checkpoint", "object", old.Object, "err", err)
			}
		}
	}
	if cp.Kind == Base {
		l.sweep(ctx, keep)
	}
	return e, nil
}

// sweep deletes the data objects of earlier generations that the manifest just written does not
// name: saves that never reached a manifest (their owner died between the two writes) and
// chains an earlier owner retired late. An earlier generation can never again make a manifest
// name one, since its swaps are fenced; objects of this generation or later are left alone.
func (l *Lease) sweep(ctx context.Context, keep map[string]bool) {
	names, err := l.s.b.list(ctx, path.Join(l.key.dir(), "data")+"/")
	if err != nil {
		l.s.log.Warn("list checkpoint objects to sweep", "partition", l.key.String(), "err", err)
		return
	}
	for _, n := range names {
		if keep[n] || keep[segmentOf(n)] {
			continue // named by the manifest, or a segment of an object it names
		}
		gen, err := strconv.ParseInt(strings.SplitN(path.Base(n), "-", 2)[0], 10, 64)
		if err != nil || gen >= l.gen {
			continue
		}
		// Segments are listed, and so deleted, one by one.
		if err := l.s.b.remove(ctx, n, 0); err != nil {
			l.s.log.Warn("remove orphaned checkpoint object", "object", n, "err", err)
		}
	}
}

// RecordFailure notes in the manifest that this owner failed at the record at offset, counting
// failures in a row at the same offset. It returns the updated record, or ErrFenced when a newer
// owner holds the partition (whose own failures count, not ours).
func (l *Lease) RecordFailure(ctx context.Context, offset int64, phase string, cause error) (Failure, error) {
	man := l.man
	f := Failure{Offset: offset, Count: 1, Phase: phase, Error: cause.Error(), Last: time.Now().UTC()}
	if prev := man.Failure; prev != nil && prev.Offset == offset {
		f.Count = prev.Count + 1
	}
	if len(f.Error) > 2048 {
		f.Error = f.Error[:2048] + "..."
	}
	man.Failure = &f
	tag, err := l.putManifest(ctx, man)
	if err != nil {
		return Failure{}, fmt.Errorf("record failure %s generation %d: %w", l.key, l.gen, err)
	}
	l.tag, l.man = tag, man
	return f, nil
}

// putManifest writes man if the manifest is still the one this lease wrote last; ErrFenced
// if a newer owner has claimed the partition since.
func (l *Lease) putManifest(ctx context.Context, man Manifest) (string, error) {
	body, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	tag, err := l.s.b.putIf(ctx, path.Join(l.key.dir(), "MANIFEST"), body, l.tag)
	if errors.Is(err, errPrecondition) {
		return "", ErrFenced
	}
	return tag, err
}

// Load returns the newest readable checkpoint of the lease's partition: the current one, or,
// if that is missing or damaged, the previous one (reported through the logger and the
// fallback hook). It returns ErrNoCheckpoint when there is none. It reads single objects: with
// incremental checkpoints the current one is usually a delta, which restores nothing alone;
// Restore reads whole chains.
func (l *Lease) Load(ctx context.Context) (Checkpoint, error) {
	return l.s.load(ctx, l.key, l.man, 0)
}

// LoadOlder is Load skipping the first skip readable checkpoints: a caller whose restore of
// the newest checkpoint failed (say, the state did not decode) asks for the one before it.
func (l *Lease) LoadOlder(ctx context.Context, skip int) (Checkpoint, error) {
	return l.s.load(ctx, l.key, l.man, skip)
}

func (s *Store) load(ctx context.Context, key Key, man Manifest, skip int) (Checkpoint, error) {
	var errs []error
	for _, e := range []*Entry{man.Current, man.Previous} {
		if e == nil {
			continue
		}
		cp, err := s.fetch(ctx, *e)
		if err != nil {
			errs = append(errs, err)
			s.log.Error("checkpoint unreadable; falling back to the previous one",
				"partition", key.String(), "object", e.Object, "offset", e.Offset, "err", err)
			if s.onFall != nil {
				s.onFall(key, err)
			}
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		return cp, nil
	}
	if len(errs) > 0 {
		return Checkpoint{}, fmt.Errorf("load %s: no readable checkpoint: %w", key, errors.Join(errs...))
	}
	return Checkpoint{}, fmt.Errorf("load %s: %w", key, ErrNoCheckpoint)
}

// Inspect reads a partition's manifest without claiming it.
func (s *Store) Inspect(ctx context.Context, key Key) (Manifest, error) {
	m, _, err := s.readManifest(ctx, key)
	if errors.Is(err, errNotFound) {
		return m, fmt.Errorf("inspect %s: %w", key, ErrNoCheckpoint)
	}
	return m, err
}

// Fetch reads and verifies the checkpoint an entry names.
func (s *Store) Fetch(ctx context.Context, e Entry) (Checkpoint, error) { return s.fetch(ctx, e) }

func (s *Store) fetch(ctx context.Context, e Entry) (Checkpoint, error) {
	data, _, err := s.b.get(ctx, e.Object)
	if errors.Is(err, errNotFound) {
		return Checkpoint{}, fmt.Errorf("%w: %s is missing", ErrCorrupt, e.Object)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read %s: %w", e.Object, err)
	}
	if int64(len(data)) != e.Size {
		return Checkpoint{}, fmt.Errorf("%w: %s has %d bytes, manifest says %d", ErrCorrupt, e.Object, len(data), e.Size)
	}
	if sum := crc32.Checksum(data, castagnoli); sum != e.CRC32C {
		return Checkpoint{}, fmt.Errorf("%w: %s checksum %08x, manifest says %08x", ErrCorrupt, e.Object, sum, e.CRC32C)
	}
	// A link's own checksum is a third check, independent of the manifest's size and CRC-32C:
	// it ties the object to the chain it was written in, whose next delta names it.
	if e.Kind != Full && binary.LittleEndian.Uint32(data[len(data)-4:]) != e.Link {
		return Checkpoint{}, fmt.Errorf("%w: %s is link %08x, manifest says %08x", ErrCorrupt, e.Object, binary.LittleEndian.Uint32(data[len(data)-4:]), e.Link)
	}
	return Checkpoint{Offset: e.Offset, EmitSeq: e.EmitSeq, Sinks: e.Sinks, Sources: e.Sources, State: data, Generation: e.Generation, Created: e.Created, Kind: e.Kind,
		SpecVersion: e.SpecVersion, Spec: e.Spec}, nil
}

func (s *Store) readManifest(ctx context.Context, key Key) (Manifest, string, error) {
	var m Manifest
	data, tag, err := s.b.get(ctx, path.Join(key.dir(), "MANIFEST"))
	if err != nil {
		return m, "", err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		// A manifest is written whole by one conditional put, so this is damage, not a race.
		return m, "", fmt.Errorf("%w: manifest of %s: %v", ErrCorrupt, key, err)
	}
	if m.Version != manifestVersion && m.Version != manifestVersion2 {
		return m, "", fmt.Errorf("%w: manifest of %s has version %d, this build reads %d and %d", ErrCorrupt, key, m.Version, manifestVersion, manifestVersion2)
	}
	return m, tag, nil
}

// Partitions lists the checkpointed partitions of a spec and topic ("" lists every spec/topic).
func (s *Store) Partitions(ctx context.Context, spec, topic string) ([]Key, error) {
	prefix := ""
	if spec != "" {
		prefix = spec + "/"
		if topic != "" {
			prefix += topic + "/"
		}
	}
	names, err := s.b.list(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var keys []Key
	for _, n := range names {
		var k Key
		dir, file := path.Split(n)
		if file != "MANIFEST" {
			continue
		}
		parts := splitDir(dir)
		if len(parts) != 3 {
			continue
		}
		p, err := parseInt32(parts[2])
		if err != nil {
			continue
		}
		k.Spec, k.Topic, k.Partition = parts[0], parts[1], p
		keys = append(keys, k)
	}
	return keys, nil
}
