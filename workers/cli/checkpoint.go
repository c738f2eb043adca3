package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
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
		Short: "List checkpointed partitions: offset, age, size, chain, generation and owner",
		Long: `ls lists every checkpointed partition under LOCATION (file:///dir or s3://bucket/prefix),
or those of one spec (and topic), with each one's current offset, age, size (of the newest
object), chain ("full" for a full checkpoint, "base+N" for an incremental base and N deltas
on it, with the chain's bytes), generation and owner. A location that exists but holds no
checkpoints prints "no checkpoints under LOCATION".

Exit status: 0 when listed (none included), 1 if a partition's manifest cannot be read,
2 if the location does not exist (a missing folder or S3 bucket) or cannot be read.`,
		Example: `  liveagg checkpoint ls file:///var/lib/liveagg/checkpoints
  liveagg checkpoint ls s3://my-bucket/checkpoints --spec indoor-l1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, keys, err := storeOpener(open).partitions(ctx, args[0], specName, topic)
			if err != nil {
				return usageErr(cmd, err.Error())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SPEC\tTOPIC\tPARTITION\tOFFSET\tAGE\tBYTES\tCHAIN\tGENERATION\tOWNER")
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
				cur, _ := m.Chains()
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", k.Spec, k.Topic, k.Partition, off, age, size, chainSummary(cur), m.Generation, m.Owner)
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
		Short: "Show a partition's manifest and verify its checkpoints: full ones, or incremental chains",
		Long: `inspect prints the manifest of one partition (generation, owner, and its current and
previous checkpoint, or for incremental checkpoints its current and previous chain: a base and
the deltas on it) and reads every object back, checking size, CRC-32C and link checksum as a
restore would, and that each delta names the link before it as its parent, in order. It then
says which point a restore would start from.

Exit status: 0 if the current checkpoint (the whole current chain) verifies, 1 if it does not
(a restore would fall back to an older point), 2 if the store or partition cannot be read.`,
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
			cur, prev := m.Chains()
			restore := ""
			code := ExitOK
			for ci, chain := range [][]checkpoint.Entry{cur, prev} {
				name := []string{"current", "previous"}[ci]
				if len(chain) == 0 {
					fmt.Fprintf(out, "%s:    none\n", name)
					continue
				}
				good := printChain(ctx, st, out, name, chain)
				if ci == 0 && good < len(chain) {
					code = ExitInvalid
				}
				if restore == "" && good > 0 {
					e := chain[good-1]
					restore = fmt.Sprintf("offset %d, emit_seq %d: the %s %s", e.Offset, e.EmitSeq, name, pointName(chain, good))
				}
			}
			if restore == "" {
				restore = "NONE: no point verifies"
			}
			fmt.Fprintf(out, "restore:    %s\n", restore)
			if code != ExitOK {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}

// chainSummary names a chain for ls: "full", or "base+N" with the chain's bytes.
func chainSummary(chain []checkpoint.Entry) string {
	if len(chain) == 0 {
		return "-"
	}
	if chain[0].Kind == checkpoint.Full {
		return "full"
	}
	size := int64(0)
	for _, e := range chain {
		size += e.Size
	}
	return fmt.Sprintf("base+%d (%d bytes)", len(chain)-1, size)
}

// pointName says which point of a chain the first n links restore.
func pointName(chain []checkpoint.Entry, n int) string {
	switch {
	case chain[0].Kind == checkpoint.Full:
		return "checkpoint"
	case n == len(chain):
		return fmt.Sprintf("chain whole (base + %d deltas)", n-1)
	default:
		return fmt.Sprintf("chain up to its base + %d deltas, of %d", n-1, len(chain)-1)
	}
}

// printChain prints a chain's links (a full checkpoint alone in the old layout) and verifies
// them in order, as a restore reads them: it returns how many links from the first verify.
func printChain(ctx context.Context, st *checkpoint.Store, out io.Writer, name string, chain []checkpoint.Entry) int {
	full := chain[0].Kind == checkpoint.Full
	if !full {
		fmt.Fprintf(out, "%s chain: %s\n", name, chainSummary(chain))
	}
	good, broken := 0, false
	var base, prev uint32
	for i, c := range chain {
		label, indent := name+":", "  "
		if !full {
			label, indent = "  base:", "    "
			if i > 0 {
				label = fmt.Sprintf("  delta %d:", i)
			}
		}
		verdict := "verified (size and CRC32C)"
		// The state's own checksum tells checkpoints apart; the manifest's CRC32C covers the
		// object with that checksum in it, which makes it CRC-32C's residue constant for every
		// state, so it is not shown.
		checksum := fmt.Sprintf("%08x", c.CRC32C)
		cp, err := st.Fetch(ctx, c)
		switch {
		case broken:
			verdict = "not usable: a link before it is broken"
		case err != nil:
			verdict = "BROKEN: " + err.Error()
		case full:
			if sum, ok := state.SnapshotChecksum(cp.State); ok {
				checksum = fmt.Sprintf("%08x (the state's own)", sum)
			}
		default:
			link, err := state.ReadLink(cp.State)
			switch {
			case err != nil:
				verdict = "BROKEN: " + err.Error()
			case i == 0 && link.Kind != "base":
				verdict = fmt.Sprintf("BROKEN: a chain starts with a %s", link.Kind)
			case i > 0 && (link.Kind != "delta" || link.Parent != prev || link.Base != base || link.Seq != uint32(i)):
				verdict = fmt.Sprintf("BROKEN: %s %d of parent %08x, base %08x does not follow link %08x of base %08x",
					link.Kind, link.Seq, link.Parent, link.Base, prev, base)
			default:
				verdict = "verified (size, CRC32C, link checksum, parent and order)"
				checksum = fmt.Sprintf("%08x (the link's own)", link.Checksum)
				prev = link.Checksum
				if i == 0 {
					base = link.Checksum
				}
			}
		}
		if !broken && strings.HasPrefix(verdict, "verified") {
			good++
		} else {
			broken = true
		}
		fmt.Fprintf(out, "%s\n%sobject:     %s\n%soffset:     %d\n%semit_seq:   %d\n%sbytes:      %d\n%scrc32c:     %s\n%sgeneration: %d\n%screated:    %s (%s ago)\n",
			label, indent, c.Object, indent, c.Offset, indent, c.EmitSeq, indent, c.Size, indent, checksum, indent, c.Generation,
			indent, c.Created.Format(time.RFC3339), time.Since(c.Created).Round(time.Second))
		for s, v := range c.Sinks {
			fmt.Fprintf(out, "%ssink:       %s at %s\n", indent, s, v)
		}
		fmt.Fprintf(out, "%sstate:      %s\n", indent, verdict)
	}
	return good
}

// usageErr prints msg and returns the usage exit code.
func usageErr(cmd *cobra.Command, msg string) error {
	fmt.Fprintln(cmd.ErrOrStderr(), "liveagg "+cmd.Name()+": "+msg)
	return &ExitError{Code: ExitUsage}
}

// partitions opens a checkpoint location and lists its partitions, of one spec (and topic) when
// they are given.
func (open storeOpener) partitions(ctx context.Context, location, specName, topic string) (*checkpoint.Store, []checkpoint.Key, error) {
	st, err := open(ctx, location)
	if err != nil {
		return nil, nil, err
	}
	keys, err := st.Partitions(ctx, specName, topic)
	if err != nil {
		return nil, nil, err
	}
	return st, keys, nil
}
