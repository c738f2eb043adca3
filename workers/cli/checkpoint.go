package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/spf13/cobra"

	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/config"
	"github.com/liveagg/liveagg/workers/state"
)

func newCheckpointCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "List and inspect checkpoints in a file:// or s3:// store",
		Long: `checkpoint reads a checkpoint store without claiming anything in it, so it is safe to run
against a store that live workers are writing. For s3:// stores the AWS SDK's usual
configuration applies (AWS_REGION, credentials), and --endpoint (or LIVEAGG_AWS_ENDPOINT)
points it at an S3-compatible store.`,
	}
	var endpoint string
	cmd.PersistentFlags().StringVar(&endpoint, "endpoint", os.Getenv("LIVEAGG_AWS_ENDPOINT"), "S3 endpoint override (moto, MinIO)")
	open := func(ctx context.Context, location string) (*checkpoint.Store, error) {
		var opts []checkpoint.Option
		if strings.HasPrefix(location, "s3://") {
			ac, err := (&config.AWS{Endpoint: endpoint}).Load(ctx)
			if err != nil {
				return nil, err
			}
			cl := s3.NewFromConfig(ac, func(o *s3.Options) {
				o.UsePathStyle = endpoint != ""
				o.DisableLogOutputChecksumValidationSkipped = true
			})
			if err := bucketExists(ctx, cl, location); err != nil {
				return nil, err
			}
			opts = append(opts, checkpoint.WithS3Client(cl))
		} else if err := folderExists(location); err != nil {
			return nil, err
		}
		return checkpoint.Open(location, opts...)
	}
	cmd.AddCommand(newCheckpointLsCmd(open), newCheckpointInspectCmd(open), newCheckpointVersionsCmd(open), newCheckpointRetireCmd(open))
	return cmd
}

type storeOpener func(context.Context, string) (*checkpoint.Store, error)

// folderExists checks a file:// location (or plain path) before checkpoint.Open, which creates
// a missing folder, as a worker needs: a reading command must not, and a mistyped path must say
// so rather than list "no checkpoints".
func folderExists(location string) error {
	dir := location
	if u, err := url.Parse(location); err == nil && u.Scheme == "file" {
		dir = u.Path
	} else if err != nil || u.Scheme != "" {
		return nil // not a folder; checkpoint.Open names the problem
	}
	if dir == "" {
		return nil // checkpoint.Open names the problem
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: folder %s does not exist", location, dir)
	case err != nil:
		return fmt.Errorf("%s: %w", location, err)
	case !st.IsDir():
		return fmt.Errorf("%s: %s is not a folder", location, dir)
	}
	return nil
}

// bucketExists checks an s3:// location's bucket, so a mistyped bucket (or one the
// credentials cannot see) is an error rather than an empty listing.
func bucketExists(ctx context.Context, cl *s3.Client, location string) error {
	u, err := url.Parse(location)
	if err != nil || u.Host == "" {
		return nil // checkpoint.Open names the problem
	}
	_, err = cl.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(u.Host)})
	var nf *s3types.NotFound
	var nsb *s3types.NoSuchBucket
	switch {
	case errors.As(err, &nf), errors.As(err, &nsb):
		return fmt.Errorf("%s: S3 bucket %s does not exist", location, u.Host)
	case err != nil:
		return fmt.Errorf("%s: cannot read S3 bucket %s: %w", location, u.Host, err)
	}
	return nil
}

func newCheckpointLsCmd(open storeOpener) *cobra.Command {
	var specName, topic string
	cmd := &cobra.Command{
		Use:   "ls LOCATION",
		Short: "List checkpointed partitions: offset, age, size, generation and owner",
		Long: `ls lists every checkpointed partition under LOCATION (file:///dir or s3://bucket/prefix),
or those of one spec (and topic), with each one's current offset, age, size, generation and
owner. A location that exists but holds no checkpoints prints "no checkpoints under LOCATION".

Exit status: 0 when listed (none included), 1 if a partition's manifest cannot be read,
2 if the location does not exist (a missing folder or S3 bucket) or cannot be read.`,
		Example: `  liveagg checkpoint ls file:///var/lib/liveagg/checkpoints
  liveagg checkpoint ls s3://my-bucket/checkpoints --spec indoor-l1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := open(ctx, args[0])
			if err != nil {
				return usageErr(cmd, err.Error())
			}
			keys, err := st.Partitions(ctx, specName, topic)
			if err != nil {
				return usageErr(cmd, err.Error())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SPEC\tTOPIC\tPARTITION\tOFFSET\tAGE\tBYTES\tGENERATION\tOWNER")
			bad := false
			for _, k := range keys {
				m, err := st.Inspect(ctx, k)
				if err != nil {
					fmt.Fprintf(tw, "%s\t%s\t%d\terror: %v\n", k.Spec, k.Topic, k.Partition, err)
					bad = true
					continue
				}
				off, age, size := "-", "-", "-"
				if c := m.Current; c != nil {
					off, age, size = strconv.FormatInt(c.Offset, 10), time.Since(c.Created).Round(time.Second).String(), strconv.FormatInt(c.Size, 10)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", k.Spec, k.Topic, k.Partition, off, age, size, m.Generation, m.Owner)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(keys) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no checkpoints under %s\n", args[0])
			}
			if bad {
				return &ExitError{Code: ExitInvalid}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&specName, "spec", "", "only this spec")
	cmd.Flags().StringVar(&topic, "topic", "", "only this input topic (with --spec)")
	return cmd
}

func newCheckpointInspectCmd(open storeOpener) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect LOCATION SPEC/TOPIC/PARTITION",
		Short: "Show a partition's manifest and verify its current and previous checkpoints",
		Long: `inspect prints the manifest of one partition (generation, owner, current and previous
checkpoint) and reads both checkpoints back, checking their size and CRC32C as a restore would.

Exit status: 0 if the current checkpoint verifies, 1 if it does not (a restore would fall back
to the previous one), 2 if the store or partition cannot be read.`,
		Example: "  liveagg checkpoint inspect file:///tmp/ckpt indoor-l1/location-raw/3",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			parts := strings.Split(args[1], "/")
			p, perr := strconv.ParseInt(parts[len(parts)-1], 10, 32)
			if len(parts) != 3 || perr != nil {
				return usageErr(cmd, fmt.Sprintf("%q is not SPEC/TOPIC/PARTITION", args[1]))
			}
			st, err := open(ctx, args[0])
			if err != nil {
				return usageErr(cmd, err.Error())
			}
			key := checkpoint.Key{Spec: parts[0], Topic: parts[1], Partition: int32(p)}
			m, err := st.Inspect(ctx, key)
			if err != nil {
				if errors.Is(err, checkpoint.ErrNoCheckpoint) {
					return usageErr(cmd, err.Error())
				}
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "partition:  %s\ngeneration: %d\nowner:      %s\n", key, m.Generation, m.Owner)
			code := ExitOK
			for _, e := range []struct {
				name  string
				entry *checkpoint.Entry
			}{{"current", m.Current}, {"previous", m.Previous}} {
				if e.entry == nil {
					fmt.Fprintf(out, "%s:    none\n", e.name)
					continue
				}
				c := e.entry
				verdict := "verified (size and CRC32C)"
				// The state's own checksum tells checkpoints apart; the manifest's CRC32C
				// covers the object with that checksum in it, which makes it CRC-32C's
				// residue constant for every state, so it is not shown.
				checksum := fmt.Sprintf("%08x", c.CRC32C)
				cp, err := st.Fetch(ctx, *c)
				if err != nil {
					verdict = "BROKEN: " + err.Error()
					if e.name == "current" {
						code = ExitInvalid
					}
				} else if sum, ok := state.SnapshotChecksum(cp.State); ok {
					checksum = fmt.Sprintf("%08x (the state's own)", sum)
				}
				fmt.Fprintf(out, "%s:\n  object:     %s\n  offset:     %d\n  emit_seq:   %d\n  bytes:      %d\n  crc32c:     %s\n  generation: %d\n  created:    %s (%s ago)\n",
					e.name, c.Object, c.Offset, c.EmitSeq, c.Size, checksum, c.Generation, c.Created.Format(time.RFC3339), time.Since(c.Created).Round(time.Second))
				for s, v := range c.Sinks {
					fmt.Fprintf(out, "  sink:       %s at %s\n", s, v)
				}
				fmt.Fprintf(out, "  state:      %s\n", verdict)
			}
			if code != ExitOK {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}

// usageErr prints msg and returns the usage exit code.
func usageErr(cmd *cobra.Command, msg string) error {
	fmt.Fprintln(cmd.ErrOrStderr(), "liveagg "+cmd.Name()+": "+msg)
	return &ExitError{Code: ExitUsage}
}
