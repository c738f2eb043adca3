// Command probe proves that a local service really answers, with the client libraries liveagg
// itself uses: a produce and a consume for Kafka, a CQL query for Cassandra, an S3 round trip for
// moto. infra/local/services runs it after a port opens, because an open port is not a working
// service (Kafka accepts connections long before its metadata quorum is ready).
//
// It is a readiness check, not a test: the integration tests under workers/ test the services.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/gocql/gocql"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	kafka := flag.String("kafka", "", "Kafka bootstrap address to probe with a produce and a consume")
	cql := flag.String("cql", "", "Cassandra native-protocol address to probe with a query")
	s3url := flag.String("s3", "", "S3 endpoint (moto) to probe with a bucket round trip")
	cqlCA := flag.String("cql-ca", "", "with -cql: connect with TLS, trusting this PEM CA file")
	cqlUser := flag.String("cql-user", "", "with -cql: log in as this user")
	cqlPass := flag.String("cql-password", "", "with -cql: the user's password")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var err error
	switch {
	case *kafka != "":
		err = retry(ctx, "kafka", func(ctx context.Context) error { return probeKafka(ctx, *kafka) })
	case *cql != "":
		err = retry(ctx, "cassandra", func(ctx context.Context) error { return probeCQL(*cql, *cqlCA, *cqlUser, *cqlPass) })
	case *s3url != "":
		err = retry(ctx, "s3", func(ctx context.Context) error { return probeS3(ctx, *s3url) })
	default:
		err = errors.New("one of -kafka, -cql, -s3 is required")
	}
	if err != nil {
		log.Fatal(err)
	}
}

func retry(ctx context.Context, what string, f func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			log.Printf("%s answered (attempt %d)", what, attempt)
			return nil
		}
		log.Printf("%s not ready (attempt %d): %v", what, attempt, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("probe %s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

func probeKafka(ctx context.Context, addr string) error {
	const topic = "liveagg-probe"
	payload := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.AllowAutoTopicCreation(),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: payload}).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	// Read every partition from its start: the record we wrote must come back.
	rd, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer rd.Close()
	for {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) { found = found || bytes.Equal(r.Value, payload) })
		if found {
			return nil
		}
	}
}

// probeCQL runs a query; with a CA it connects over TLS verified against it, and with a user it
// logs in (the secured instance's superuser appears a few seconds after the port opens).
func probeCQL(addr, caFile, user, pass string) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	c := gocql.NewCluster(host)
	c.Port = port
	c.Timeout = 10 * time.Second
	c.ConnectTimeout = 10 * time.Second
	c.DisableInitialHostLookup = true
	if caFile != "" {
		c.SslOpts = &gocql.SslOptions{CaPath: caFile, EnableHostVerification: true}
	}
	if user != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: user, Password: pass}
	}
	s, err := c.CreateSession()
	if err != nil {
		return err
	}
	defer s.Close()
	var v string
	if err := s.Query("SELECT release_version FROM system.local").Scan(&v); err != nil {
		return err
	}
	log.Printf("cassandra release_version %s", v)
	return nil
}

func probeS3(ctx context.Context, endpoint string) error {
	cl := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	const bucket, key = "liveagg-probe", "probe"
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		var owned interface{ ErrorCode() string }
		if !errors.As(err, &owned) || (owned.ErrorCode() != "BucketAlreadyOwnedByYou" && owned.ErrorCode() != "BucketAlreadyExists") {
			return fmt.Errorf("create bucket: %w", err)
		}
	}
	body := []byte("ok")
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, body) {
		return fmt.Errorf("get returned %q, want %q", got, body)
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}
