package checkpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// fileBlobs keeps objects as files under a folder. Writes go to a temporary file that is synced
// and renamed into place, so a crash leaves the old object or the new one, never a mix.
// Conditional writes hold an exclusive flock on a lock file beside the object and compare the
// object's tag (size and CRC-32C of its content) before renaming.
type fileBlobs struct{ dir string }

func newFileBlobs(dir string) (*fileBlobs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint folder: %w", err)
	}
	return &fileBlobs{dir: dir}, nil
}

func (f *fileBlobs) location() string { return "file://" + f.dir }

func (f *fileBlobs) path(name string) string { return filepath.Join(f.dir, filepath.FromSlash(name)) }

func tagOf(data []byte) string {
	return strconv.Itoa(len(data)) + "-" + strconv.FormatUint(uint64(crc32.Checksum(data, castagnoli)), 16)
}

func (f *fileBlobs) get(_ context.Context, name string) ([]byte, string, error) {
	data, err := os.ReadFile(f.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errNotFound
	}
	if err != nil {
		return nil, "", err
	}
	return data, tagOf(data), nil
}

func (f *fileBlobs) put(_ context.Context, name string, data []byte) error {
	return writeAtomic(f.path(name), data)
}

func (f *fileBlobs) putIf(_ context.Context, name string, data []byte, ifTag string) (string, error) {
	p := f.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(p+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", p, err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	cur, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ifTag != "" {
			return "", errPrecondition
		}
	case err != nil:
		return "", err
	case tagOf(cur) != ifTag:
		return "", errPrecondition
	}
	if err := writeAtomic(p, data); err != nil {
		return "", err
	}
	return tagOf(data), nil
}

func (f *fileBlobs) remove(_ context.Context, name string, _ int64) error {
	err := os.Remove(f.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (f *fileBlobs) list(_ context.Context, prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, ".lock") || strings.Contains(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(f.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, prefix) {
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}

func writeAtomic(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := p + ".tmp-" + hex.EncodeToString(rnd[:])
	fh, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		os.Remove(tmp)
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		os.Remove(tmp)
		return err
	}
	if err := fh.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	// Sync the folder so the rename itself survives a power loss.
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func splitDir(dir string) []string {
	dir = strings.Trim(dir, "/")
	if dir == "" {
		return nil
	}
	return strings.Split(dir, "/")
}

func parseInt32(s string) (int32, error) {
	v, err := strconv.ParseInt(s, 10, 32)
	return int32(v), err
}
