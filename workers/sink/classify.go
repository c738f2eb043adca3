package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Class is what a failed write means for the partition that made it. Every sink error is
// classified by the one function Classify, so the rule is the same for Cassandra, S3 and Kafka
// outputs and the worker's poison-record guard.
type Class int

const (
	// Transient errors pass: a timeout, an unavailable replica, throttling, a lost connection,
	// and any error Classify does not recognise.
	// The write is retried with backoff and the partition holds (it stops consuming) until it
	// succeeds. Nothing is dropped.
	Transient Class = iota
	// Configuration errors refuse every write until an operator acts: bad credentials, no
	// permission, a table or bucket that does not exist. They hold the partition like
	// transient ones (a restart would not help, and dead-lettering every row would move the
	// whole stream into the dead letters), and are reported as such.
	Configuration
	// Rejected errors are about one row: a value the store does not accept, a row too large.
	// Neither a retry nor a replay can change the answer, so the row is dead-lettered with the
	// error and the partition goes on.
	Rejected
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Configuration:
		return "configuration"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Classify says what a sink's write error means. Only errors known to be about the row are
// rejected; anything it does not recognise is transient: holding a partition on an unknown
// error is loud (the sink shows as blocked, its errors count) and loses nothing, while
// dead-lettering rows on one would move good output out of the store for good.
func Classify(err error) Class {
	c, _ := classifyKnown(err)
	return c
}

// KnownTransient says whether err is one Classify recognises as passing (a timeout, a store
// away, a cancelled context), as opposed to one it only treats so because it does not know it.
// The worker's poison guard counts every failure at a record but these.
func KnownTransient(err error) bool {
	c, known := classifyKnown(err)
	return known && c == Transient
}

// classifyKnown is Classify, and whether it recognised the error.
func classifyKnown(err error) (Class, bool) {
	if err == nil {
		return Transient, false
	}
	if isTrust(err) {
		// A certificate the store's CA does not sign, or a name it does not carry: nothing a
		// row can cause, and nothing a retry fixes until an operator does.
		return Configuration, true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isNetwork(err) {
		return Transient, true
	}
	for _, classify := range []func(error) (Class, bool){classifyCassandra, classifyKafka, classifyS3} {
		if c, ok := classify(err); ok {
			return c, true
		}
	}
	return Transient, false
}

func isNetwork(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
}

func isTrust(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &alert)
}

func classifyCassandra(err error) (Class, bool) {
	var rt gocql.RequestError
	if errors.As(err, &rt) {
		switch rt.Code() {
		case gocql.ErrCodeWriteTimeout, gocql.ErrCodeUnavailable, gocql.ErrCodeOverloaded,
			gocql.ErrCodeReadTimeout, gocql.ErrCodeServer, gocql.ErrCodeBootstrapping,
			gocql.ErrCodeTruncate, gocql.ErrCodeUnprepared, gocql.ErrCodeCASWriteUnknown:
			return Transient, true
		case gocql.ErrCodeCredentials, gocql.ErrCodeUnauthorized, gocql.ErrCodeSyntax,
			gocql.ErrCodeConfig, gocql.ErrCodeProtocol, gocql.ErrCodeAlreadyExists:
			return Configuration, true
		case gocql.ErrCodeInvalid:
			// The same code covers a value the table refuses ("String didn't validate",
			// "Key length ... is longer than maximum") and a schema that is not there.
			m := strings.ToLower(rt.Message())
			for _, schema := range []string{"unconfigured table", "keyspace", "undefined column", "unknown identifier", "does not exist"} {
				if strings.Contains(m, schema) {
					return Configuration, true
				}
			}
			return Rejected, true
		}
		// Write failures (replicas that refused for their own reasons, a schema still
		// settling) and the rest pass.
		return Transient, true
	}
	var me gocql.MarshalError
	if errors.As(err, &me) {
		// A value of the wrong type for its column: the table's column has another type
		// than the spec's (a spec changed under an existing table), so every row fails.
		return Configuration, true
	}
	if errors.Is(err, gocql.ErrTimeoutNoResponse) || errors.Is(err, gocql.ErrNoConnections) ||
		errors.Is(err, gocql.ErrConnectionClosed) || errors.Is(err, gocql.ErrNoStreams) ||
		errors.Is(err, gocql.ErrSessionClosed) || errors.Is(err, gocql.ErrTooManyTimeouts) ||
		errors.Is(err, gocql.ErrUnavailable) || errors.Is(err, gocql.ErrHostQueryFailed) {
		return Transient, true
	}
	if errors.Is(err, gocql.ErrNotFound) {
		return Configuration, true
	}
	return 0, false
}

func classifyKafka(err error) (Class, bool) {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return 0, false
	}
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage),
		errors.Is(err, kerr.InvalidTimestamp):
		return Rejected, true
	case ke.Retriable:
		return Transient, true
	}
	// Authorization, an invalid or missing topic, a policy violation: sink-wide.
	return Configuration, true
}

// s3 error codes that say the object itself is wrong. A key too long or an invalid argument
// (bucket settings such as encryption or object lock) refuses every object alike, so those
// are configuration; every other code that is not the SDK's retryable list is about the
// bucket, the credentials or the permissions.
var s3RowCodes = map[string]bool{"EntityTooLarge": true, "MetadataTooLarge": true}

// s3 error codes of a store that is struggling, whatever the HTTP status said.
var s3TransientCodes = map[string]bool{
	"InternalError": true, "ServiceUnavailable": true, "RequestTimeout": true, "SlowDown": true,
	"OperationAborted": true,
}

func classifyS3(err error) (Class, bool) {
	var api smithy.APIError
	if !errors.As(err, &api) {
		if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary {
			return Transient, true
		}
		return 0, false
	}
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary || s3TransientCodes[api.ErrorCode()] {
		return Transient, true
	}
	if s3RowCodes[api.ErrorCode()] {
		return Rejected, true
	}
	return Configuration, true
}
