package sink

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/liveagg/liveagg/workers/emit"
)

// File writes newline-delimited JSON rows, one file per (spec, input partition), under a folder.
// It is exactly-once by truncation: the checkpoint records each file's length at its flush, and
// a writer opened from that checkpoint cuts the file back to it before the replay appends the
// same rows again.
type File struct {
	dir string
}

// NewFile returns a file sink writing under dir.
func NewFile(dir string) (*File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	return &File{dir: dir}, nil
}

// Name implements Sink.
func (f *File) Name() string { return "file:" + f.dir }

// Close implements Sink.
func (f *File) Close() error { return nil }

// Path is the file a partition's rows go to.
func (f *File) Path(p PartitionKey) string {
	return filepath.Join(f.dir, fmt.Sprintf("%s-%s-p%d.jsonl", p.Spec, p.Topic, p.Partition))
}

// Open implements Sink.
func (f *File) Open(_ context.Context, p PartitionKey, progress string) (Writer, error) {
	path := f.Path(p)
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	var size int64
	if progress != "" {
		if size, err = strconv.ParseInt(progress, 10, 64); err != nil {
			fh.Close()
			return nil, fmt.Errorf("file sink: bad progress %q for %s", progress, path)
		}
	}
	// Rows past the checkpoint's length were written by an owner that died before its next
	// checkpoint; the replay writes them again.
	if err := fh.Truncate(size); err != nil {
		fh.Close()
		return nil, fmt.Errorf("file sink: truncate %s to %d: %w", path, size, err)
	}
	if _, err := fh.Seek(size, io.SeekStart); err != nil {
		fh.Close()
		return nil, err
	}
	return &fileWriter{fh: fh, w: bufio.NewWriterSize(fh, 1<<20), size: size}, nil
}

type fileWriter struct {
	fh   *os.File
	w    *bufio.Writer
	size int64
	buf  []byte
}

func (fw *fileWriter) Write(_ context.Context, w *emit.Window) error {
	for i := range w.Rows {
		fw.buf = append(w.AppendJSON(fw.buf[:0], i), '\n')
		n, err := fw.w.Write(fw.buf)
		fw.size += int64(n)
		if err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
	}
	return nil
}

func (fw *fileWriter) Flush(context.Context) (string, error) {
	if err := fw.w.Flush(); err != nil {
		return "", fmt.Errorf("file sink: %w", err)
	}
	if err := fw.fh.Sync(); err != nil {
		return "", fmt.Errorf("file sink: %w", err)
	}
	return strconv.FormatInt(fw.size, 10), nil
}

func (fw *fileWriter) Close() error { return fw.fh.Close() }
