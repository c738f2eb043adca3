package checkpoint

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// S3API is the part of the S3 client the store uses; *s3.Client implements it. Retries with
// backoff are the client's (configure its retryer); this package adds none on top.
type S3API interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// Multipart upload shape: a state above multipartMin bytes goes up in parts of partSize,
// partConcurrency at a time, so a gigabyte checkpoint is not one 1 GB request.
//
// A state above segmentSize is stored as several objects, segments of segmentSize, named
// <name>.seg-<i>, and <name> itself holds their index: the number of segments and each one's
// size. Segments upload and download several at a time, and neither a store nor a client ever
// handles one object of tens of gigabytes whole (S3 takes at most 5 GB in one PUT, and some
// S3-compatible stores assemble a multipart object in memory).
const (
	multipartMin       = 32 << 20
	partSize           = 16 << 20
	partConcurrency    = 4
	segmentSize        = 512 << 20
	segmentConcurrency = 2
	segmentMagic       = "LASEGIDX"
)

type s3Blobs struct {
	cl     S3API
	bucket string
	prefix string
	seg    int // segment size; segmentSize unless a test sets it
}

func (b *s3Blobs) location() string { return "s3://" + path.Join(b.bucket, b.prefix) }

func (b *s3Blobs) key(name string) string {
	if b.prefix == "" {
		return name
	}
	return b.prefix + "/" + name
}

// get reads an object, reassembling a segmented one.
func (b *s3Blobs) get(ctx context.Context, name string) ([]byte, string, error) {
	data, tag, err := b.getOne(ctx, name)
	if err != nil || !isSegmentIndex(data) {
		return data, tag, err
	}
	sizes, err := parseSegmentIndex(data)
	if err != nil {
		return nil, "", fmt.Errorf("s3://%s/%s: %w", b.bucket, b.key(name), err)
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	out := make([]byte, total)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(segmentConcurrency)
	off := 0
	for i, n := range sizes {
		dst := out[off : off+n]
		off += n
		g.Go(func() error {
			seg, _, err := b.getOne(gctx, segmentName(name, i))
			if errors.Is(err, errNotFound) {
				return fmt.Errorf("segment %d of s3://%s/%s is missing", i, b.bucket, b.key(name))
			}
			if err != nil {
				return err
			}
			if len(seg) != n {
				return fmt.Errorf("segment %d of s3://%s/%s has %d bytes, its index says %d", i, b.bucket, b.key(name), len(seg), n)
			}
			copy(dst, seg)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, "", err
	}
	return out, tag, nil
}

func segmentName(name string, i int) string { return fmt.Sprintf("%s.seg-%05d", name, i) }

// segmentOf returns the object a segment belongs to, or "" for an object that is none.
func segmentOf(name string) string {
	i := strings.LastIndex(name, ".seg-")
	if i < 0 {
		return ""
	}
	return name[:i]
}

func isSegmentIndex(data []byte) bool {
	return len(data) >= len(segmentMagic) && string(data[:len(segmentMagic)]) == segmentMagic
}

func parseSegmentIndex(data []byte) ([]int, error) {
	fields := strings.Fields(string(data[len(segmentMagic):]))
	if len(fields) == 0 {
		return nil, errors.New("empty segment index")
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n != len(fields)-1 {
		return nil, fmt.Errorf("segment index of %d fields says %q segments", len(fields), fields[0])
	}
	sizes := make([]int, n)
	for i := range sizes {
		if sizes[i], err = strconv.Atoi(fields[i+1]); err != nil || sizes[i] < 0 {
			return nil, fmt.Errorf("segment %d size %q", i, fields[i+1])
		}
	}
	return sizes, nil
}

func (b *s3Blobs) getOne(ctx context.Context, name string) ([]byte, string, error) {
	out, err := b.cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(b.key(name))})
	if isNotFound(err) {
		return nil, "", errNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("get s3://%s/%s: %w", b.bucket, b.key(name), err)
	}
	defer out.Body.Close()
	buf := bytes.NewBuffer(make([]byte, 0, max(aws.ToInt64(out.ContentLength), 512)))
	if _, err := io.Copy(buf, out.Body); err != nil {
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", b.bucket, b.key(name), err)
	}
	return buf.Bytes(), aws.ToString(out.ETag), nil
}

// put writes an object; one larger than segmentSize as segments and then their index, so the
// object exists (under its name) only once every segment does.
func (b *s3Blobs) put(ctx context.Context, name string, data []byte) error {
	size := cmp.Or(b.seg, segmentSize)
	if len(data) <= size {
		return b.putOne(ctx, name, data)
	}
	n := (len(data) + size - 1) / size
	idx := fmt.Appendf(nil, "%s %d", segmentMagic, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(segmentConcurrency)
	for i := range n {
		seg := data[i*size : min((i+1)*size, len(data))]
		idx = fmt.Appendf(idx, " %d", len(seg))
		g.Go(func() error { return b.putOne(gctx, segmentName(name, i), seg) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return b.putOne(ctx, name, idx)
}

func (b *s3Blobs) putOne(ctx context.Context, name string, data []byte) error {
	if len(data) >= multipartMin {
		return b.putMultipart(ctx, name, data)
	}
	_, err := b.cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: aws.String(b.key(name)), Body: bytes.NewReader(data)})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", b.bucket, b.key(name), err)
	}
	return nil
}

func (b *s3Blobs) putMultipart(ctx context.Context, name string, data []byte) error {
	key := aws.String(b.key(name))
	up, err := b.cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: key})
	if err != nil {
		return fmt.Errorf("start multipart upload of s3://%s/%s: %w", b.bucket, *key, err)
	}
	n := (len(data) + partSize - 1) / partSize
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partConcurrency)
	for i := range n {
		g.Go(func() error {
			chunk := data[i*partSize : min((i+1)*partSize, len(data))]
			out, err := b.cl.UploadPart(gctx, &s3.UploadPartInput{
				Bucket: &b.bucket, Key: key, UploadId: up.UploadId,
				PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(chunk),
			})
			if err != nil {
				return fmt.Errorf("part %d: %w", i+1, err)
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_, _ = b.cl.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &b.bucket, Key: key, UploadId: up.UploadId})
		return fmt.Errorf("multipart upload of s3://%s/%s: %w", b.bucket, *key, err)
	}
	_, err = b.cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &b.bucket, Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload of s3://%s/%s: %w", b.bucket, *key, err)
	}
	return nil
}

func (b *s3Blobs) putIf(ctx context.Context, name string, data []byte, ifTag string) (string, error) {
	in := &s3.PutObjectInput{Bucket: &b.bucket, Key: aws.String(b.key(name)), Body: bytes.NewReader(data)}
	if ifTag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifTag)
	}
	out, err := b.cl.PutObject(ctx, in)
	if isPrecondition(err) {
		return "", errPrecondition
	}
	if err != nil {
		return "", fmt.Errorf("conditional put s3://%s/%s: %w", b.bucket, b.key(name), err)
	}
	return aws.ToString(out.ETag), nil
}

// remove deletes an object, and the segments of a segmented one: an object whose size is
// unknown or above the segment size is looked for segments first.
func (b *s3Blobs) remove(ctx context.Context, name string, size int64) error {
	if segmentOf(name) == "" && (size < 0 || size > int64(cmp.Or(b.seg, segmentSize))) {
		segs, err := b.list(ctx, name+".seg-")
		if err != nil {
			return err
		}
		for _, seg := range segs {
			if err := b.removeOne(ctx, seg); err != nil {
				return err
			}
		}
	}
	return b.removeOne(ctx, name)
}

func (b *s3Blobs) removeOne(ctx context.Context, name string) error {
	_, err := b.cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: aws.String(b.key(name))})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete s3://%s/%s: %w", b.bucket, b.key(name), err)
	}
	return nil
}

func (b *s3Blobs) list(ctx context.Context, prefix string) ([]string, error) {
	full := b.key(prefix)
	p := s3.NewListObjectsV2Paginator(b.cl, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: aws.String(full)})
	var out []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", b.bucket, full, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if b.prefix != "" {
				k = strings.TrimPrefix(k, b.prefix+"/")
			}
			out = append(out, k)
		}
	}
	return out, nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound")
}

// isPrecondition recognises a refused conditional write: 412 PreconditionFailed, or 409
// ConditionalRequestConflict when two conditional writes race.
func isPrecondition(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "PreconditionFailed" || api.ErrorCode() == "ConditionalRequestConflict")
}
