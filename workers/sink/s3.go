package sink

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/liveagg/liveagg/workers/emit"
)

// S3API is the part of the S3 client the sink uses.
type S3API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// S3 writes one gzipped newline-delimited JSON object per (spec, window, input partition):
//
//	<prefix>/<spec>/size=<1m>/start=<2026-01-01T00:00:00Z>/<topic>-p<partition>.jsonl.gz
//
// The name depends only on what the window is, so a replayed window overwrites its own object.
type S3 struct {
	cl          S3API
	bucket      string
	prefix      string
	concurrency int
	obs         Observer
}

// NewS3 returns an S3 sink for s3://bucket/prefix.
func NewS3(cl S3API, location string) (*S3, error) {
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("s3 sink: %q is not s3://bucket/prefix", location)
	}
	return &S3{cl: cl, bucket: u.Host, prefix: strings.Trim(u.Path, "/"), concurrency: 8, obs: nopObserver{}}, nil
}

// Name implements Sink.
func (s *S3) Name() string { return "s3://" + path.Join(s.bucket, s.prefix) }

// Close implements Sink.
func (s *S3) Close() error { return nil }

// ObjectKey is where a window's rows of one input partition go.
func (s *S3) ObjectKey(w *emit.Window) string {
	size := (time.Duration(w.Size) * time.Millisecond).String()
	start := time.UnixMilli(w.Start).UTC().Format(time.RFC3339)
	return path.Join(s.prefix, w.Spec, "size="+size, "start="+start, fmt.Sprintf("%s-p%d.jsonl.gz", w.Topic, w.Partition))
}

// Observe implements Observable.
func (s *S3) Observe(o Observer) { s.obs = o }

// Open implements Sink.
func (s *S3) Open(context.Context, PartitionKey, string) (Writer, error) {
	retry := &retryPolicy{name: s.Name(), obs: s.obs, min: 100 * time.Millisecond, max: 10 * time.Second}
	return &s3Writer{s: s, f: newInflight(s.concurrency, retry)}, nil
}

type s3Writer struct {
	s  *S3
	f  *inflight
	zw *gzip.Writer // reused: a new one allocates ~800 KB of compressor state per window
}

func (w *s3Writer) Write(ctx context.Context, win *emit.Window) error {
	if err := w.f.firstErr(); err != nil {
		return err
	}
	var buf bytes.Buffer // its own per window: the upload reads it after Write returns
	if w.zw == nil {
		w.zw = gzip.NewWriter(&buf)
	} else {
		w.zw.Reset(&buf)
	}
	zw := w.zw
	// A fixed header time keeps the gzip bytes a function of the rows alone.
	zw.ModTime = time.Unix(0, 0)
	var line []byte
	for i := range win.Rows {
		line = append(win.AppendJSON(line[:0], i), '\n')
		if _, err := zw.Write(line); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	key := w.s.ObjectKey(win)
	return w.f.goWrite(ctx, func() error {
		_, err := w.s.cl.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(w.s.bucket), Key: aws.String(key), Body: bytes.NewReader(buf.Bytes()),
			ContentType: aws.String("application/x-ndjson"), ContentEncoding: aws.String("gzip"),
		})
		if err != nil {
			return fmt.Errorf("s3 sink: put %s: %w", key, err)
		}
		return nil
	}, func(err error) []Rejection {
		// The object is the window's rows of this partition: all of them are refused.
		out := make([]Rejection, len(win.Rows))
		for i := range win.Rows {
			out[i] = Rejection{Sink: w.s.Name(), Window: win, Row: i, Err: err}
		}
		return out
	})
}

func (w *s3Writer) Flush(context.Context) (string, error) { return "", w.f.wait() }

// TakeRejections implements Rejecter.
func (w *s3Writer) TakeRejections() []Rejection { return w.f.takeRejections() }

func (w *s3Writer) Close() error {
	_ = w.f.wait()
	return nil
}
