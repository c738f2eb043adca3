package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kerr"
)

// cqlErr is a Cassandra error response as gocql hands it over.
type cqlErr struct {
	code int
	msg  string
}

func (e cqlErr) Code() int       { return e.code }
func (e cqlErr) Message() string { return e.msg }
func (e cqlErr) Error() string   { return e.msg }

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("cassandra sink ks.t: %w", err) }
	tests := []struct {
		name string
		err  error
		want Class
	}{
		// Cassandra
		{"cassandra write timeout", wrap(cqlErr{gocql.ErrCodeWriteTimeout, "Operation timed out"}), Transient},
		{"cassandra unavailable", wrap(cqlErr{gocql.ErrCodeUnavailable, "Cannot achieve consistency level"}), Transient},
		{"cassandra overloaded", wrap(cqlErr{gocql.ErrCodeOverloaded, "overloaded"}), Transient},
		{"cassandra no connections", wrap(gocql.ErrNoConnections), Transient},
		{"cassandra no response", wrap(gocql.ErrTimeoutNoResponse), Transient},
		{"cassandra bad credentials", wrap(cqlErr{gocql.ErrCodeCredentials, "Provided username and/or password are incorrect"}), Configuration},
		{"cassandra unauthorized", wrap(cqlErr{gocql.ErrCodeUnauthorized, "User x has no MODIFY permission"}), Configuration},
		{"cassandra dropped table", wrap(cqlErr{gocql.ErrCodeInvalid, "unconfigured table rollups"}), Configuration},
		{"cassandra missing keyspace", wrap(cqlErr{gocql.ErrCodeInvalid, "Keyspace ks does not exist"}), Configuration},
		{"cassandra invalid UTF-8", wrap(cqlErr{gocql.ErrCodeInvalid, "Invalid UTF-8 bytes 6dfffe; String didn't validate."}), Rejected},
		{"cassandra key too long", wrap(cqlErr{gocql.ErrCodeInvalid, "Key length of 70000 is longer than maximum of 65535"}), Rejected},
		{"cassandra write failure", wrap(cqlErr{gocql.ErrCodeWriteFailure, "Operation failed - received 0 responses and 1 failures: INCOMPATIBLE_SCHEMA"}), Transient},
		{"cassandra too many timeouts", wrap(gocql.ErrTooManyTimeouts), Transient},
		{"cassandra unavailable sentinel", wrap(gocql.ErrUnavailable), Transient},
		{"cassandra prepare without a connection", wrap(errors.New("gocql: unable to fetch prepared info: no connection available")), Transient},
		{"cassandra column of another type", wrap(gocql.MarshalError("can not marshal string into double")), Configuration},
		// S3
		{"s3 throttled", &smithy.GenericAPIError{Code: "SlowDown", Message: "Please reduce your request rate"}, Transient},
		{"s3 internal error", &smithy.GenericAPIError{Code: "InternalError"}, Transient},
		{"s3 access denied", &smithy.GenericAPIError{Code: "AccessDenied"}, Configuration},
		{"s3 no bucket", &smithy.GenericAPIError{Code: "NoSuchBucket"}, Configuration},
		{"s3 bad credentials", &smithy.GenericAPIError{Code: "InvalidAccessKeyId"}, Configuration},
		{"s3 key too long", &smithy.GenericAPIError{Code: "KeyTooLongError"}, Configuration},
		{"s3 invalid argument", &smithy.GenericAPIError{Code: "InvalidArgument"}, Configuration},
		{"s3 entity too large", &smithy.GenericAPIError{Code: "EntityTooLarge"}, Rejected},
		// Kafka
		{"kafka not leader", fmt.Errorf("produce: %w", kerr.NotLeaderForPartition), Transient},
		{"kafka request timed out", kerr.RequestTimedOut, Transient},
		{"kafka message too large", fmt.Errorf("produce: %w", kerr.MessageTooLarge), Rejected},
		{"kafka invalid record", kerr.InvalidRecord, Rejected},
		{"kafka topic authorization", kerr.TopicAuthorizationFailed, Configuration},
		{"kafka SASL", kerr.SaslAuthenticationFailed, Configuration},
		// TLS, for any store
		{"untrusted certificate", fmt.Errorf("dial: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), Configuration},
		{"wrong server name", fmt.Errorf("dial: %w", x509.HostnameError{Host: "10.0.0.1"}), Configuration},
		{"handshake refused", fmt.Errorf("dial: %w", tls.AlertError(42)), Configuration},
		// Anything
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, Transient},
		{"connection reset", fmt.Errorf("write: %w", syscall.ECONNRESET), Transient},
		{"EOF", io.ErrUnexpectedEOF, Transient},
		{"deadline", context.DeadlineExceeded, Transient},
		{"unknown: held, not dead-lettered", errors.New("value out of range"), Transient},
		{"disk full", fmt.Errorf("write: %w", syscall.ENOSPC), Transient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

// The poison guard counts a failure unless it is known to pass: a bug's panic or an unknown
// error counts, a timeout or a lost connection does not.
func TestKnownTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("flush: %w", context.Canceled), true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("produce: %w", kerr.NotLeaderForPartition), true},
		{errors.New("BUG: panic at offset 150 (emit): buggy sink"), false},
		{fmt.Errorf("produce: %w", kerr.MessageTooLarge), false},
		{gocql.MarshalError("can not marshal"), false},
	} {
		if got := KnownTransient(tc.err); got != tc.want {
			t.Errorf("KnownTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
