package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/liveagg/liveagg/workers/admin"
	"github.com/liveagg/liveagg/workers/checkpoint"
	"github.com/liveagg/liveagg/workers/config"
	"github.com/liveagg/liveagg/workers/cwpub"
	"github.com/liveagg/liveagg/workers/sink"
	"github.com/liveagg/liveagg/workers/spec"
	"github.com/liveagg/liveagg/workers/specsrc"
	"github.com/liveagg/liveagg/workers/spot"
	"github.com/liveagg/liveagg/workers/state"
	"github.com/liveagg/liveagg/workers/topics"
	"github.com/liveagg/liveagg/workers/worker"
)

func newWorkerCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "worker --config worker.yaml",
		Short: "Run a spot worker: consume, aggregate, checkpoint, write rollups",
		Long: `worker joins the spec's Kafka consumer group and owns the partitions assigned to it:
it restores each from its checkpoint, aggregates its records, writes closed windows to the
spec's outputs and checkpoints state with offsets. SIGTERM drains (checkpoint, leave the group)
before exiting. See workers/config for the file's fields; LIVEAGG_* variables override them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			// Every line of the process says which worker wrote it, the worker package's too.
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil)).With("worker", cfg.WorkerID)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return exitStatus(RunWorker(ctx, cfg, log), log)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "worker.yaml", "worker configuration file")
	return cmd
}

// exitStatus turns a worker's end into the exit status its supervisor acts on: ExitHalted for
// what a restart cannot fix, ExitFailed for the rest.
func exitStatus(err error, log *slog.Logger) error {
	var exit *ExitError
	switch {
	case err == nil || errors.As(err, &exit):
		return err
	case errors.Is(err, worker.ErrOffsetLost), errors.Is(err, worker.ErrLogRewritten), errors.Is(err, worker.ErrNoRestore), errors.Is(err, worker.ErrPartitionsAdded),
		errors.Is(err, sink.ErrDeadLetterTooSmall), errors.Is(err, sink.ErrSchemaMismatch), errors.Is(err, state.ErrMismatch):
		log.Error("worker halted: a restart cannot fix this; see the error", "err", err, "exit_status", ExitHalted)
		return &ExitError{Code: ExitHalted}
	}
	log.Error("worker failed; restart it to restore its checkpoints and replay", "err", err, "exit_status", ExitFailed)
	return &ExitError{Code: ExitFailed}
}

// RunWorker wires a worker from its configuration and runs it until ctx ends (then it drains)
// or it fails.
func RunWorker(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	loadAWS := func(ctx context.Context) (aws.Config, error) { return cfg.AWS.Load(ctx) }
	kopts, err := cfg.Kafka.ClientOpts(ctx, loadAWS)
	if err != nil {
		return err
	}
	// One S3 client for the spec source, checkpoints and S3 outputs; built even when nothing
	// needs it yet (cheap: it connects on first use).
	ac, err := loadAWS(ctx)
	if err != nil {
		return err
	}
	s3c := s3.NewFromConfig(ac, func(o *s3.Options) {
		o.UsePathStyle = cfg.AWS.Endpoint != ""
		// S3-compatible stores often send no response checksum; that is not worth a log line.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	src, err := specsrc.Open(cfg.Spec, s3c)
	if err != nil {
		return err
	}
	s, specTag, err := src.Load(ctx)
	if err != nil {
		return err
	}
	ckptOpts := []checkpoint.Option{checkpoint.WithLogger(log), checkpoint.WithS3Client(s3c)}
	if rule, on := cfg.Checkpoint.IncrementalRule(); on {
		ckptOpts = append(ckptOpts, checkpoint.WithIncremental(rule))
	}
	store, err := checkpoint.Open(cfg.Checkpoint.Location, ckptOpts...)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w, closeSinks, err := buildPipeline(ctx, cfg, s, kopts, s3c, store, reg, log)
	if err != nil {
		return err
	}
	defer closeSinks()
	if cfg.Metrics.Listen != "" {
		mux := http.NewServeMux()
		mux.Handle("/", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if cfg.Metrics.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		}
		stopMetrics, err := serve(cfg.Metrics.Listen, mux, log)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		defer stopMetrics()
	}
	if cfg.Admin.Listen != "" {
		token, err := adminToken(ctx, cfg, loadAWS)
		if err != nil {
			return err
		}
		var tlsCfg *tls.Config
		if cfg.Admin.TLS.Enabled() {
			cert, err := cfg.Admin.TLS.Certificate(ctx, loadAWS)
			if err != nil {
				return err
			}
			tlsCfg = admin.ServerTLS(cert)
		}
		stopAdmin, err := serve(cfg.Admin.Listen, admin.Handler[worker.Status](w, token, log), log, withTLS(tlsCfg))
		if err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
		defer stopAdmin()
	}
	// Every long-lived part runs in one group and is joined before RunWorker returns: the worker,
	// the spec watcher, the CloudWatch publisher and the spot-notice watcher. The worker ends
	// first (after its drain); cancelling runCtx then stops the others.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var g errgroup.Group
	defer func() { cancel(); _ = g.Wait() }()
	if cfg.Admin.OnEC2 {
		if err := onEC2(runCtx, &g, cfg, w, loadAWS, log); err != nil {
			return err
		}
	}
	if cfg.Metrics.CloudWatchInterval > 0 {
		ac, err := loadAWS(ctx)
		if err != nil {
			return err
		}
		pub := cwpub.New(cloudwatch.NewFromConfig(ac), s.Name, cfg.Metrics.AutoScalingGroup)
		g.Go(func() error { pub.Run(runCtx, cfg.Metrics.CloudWatchInterval, sampler(w), log); return nil })
	}
	done := make(chan error, 1)
	g.Go(func() error { done <- w.Run(runCtx); return nil })
	specChanged := make(chan error, 1)
	g.Go(func() error {
		_, err := src.Watch(runCtx, specTag, cfg.SpecPollInterval, log)
		specChanged <- err
		return nil
	})
	drain := func(why string) error {
		dctx, dcancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer dcancel()
		if err := w.Drain(dctx); err != nil {
			log.Error("drain failed", "on", why, "err", err)
			cancel()
		}
		return <-done
	}
	select {
	case err := <-done:
		if err == nil && w.Status().Draining {
			log.Info("drained for the instance's termination; exiting with status 3 so it is not restarted")
			return &ExitError{Code: ExitDrained}
		}
		return err
	case err := <-specChanged:
		if !errors.Is(err, specsrc.ErrChanged) {
			return <-done
		}
		// State is shaped by the spec: checkpoint everything and let the supervisor restart
		// the worker on the new spec rather than swap it under live state.
		log.Info("spec changed: draining so the worker restarts on the new spec", "source", cfg.Spec)
		return drain("spec change")
	case <-ctx.Done():
		// SIGTERM: drain, so the partitions move with fresh checkpoints.
		return drain("shutdown")
	}
}

// buildPipeline builds a worker per stage of the spec (see spec.Spec.Stages), each with its
// sinks, its consumer group, and its metrics labelled with its stage when there are two. For a
// spec run in two stages it first creates the repartition topic if it is missing.
func buildPipeline(ctx context.Context, cfg *config.Config, s *spec.Spec, kopts []kgoOpt, s3c *s3.Client, store *checkpoint.Store,
	reg prometheus.Registerer, log *slog.Logger) (p *worker.Pipeline, closeAll func(), err error) {
	var closers []func()
	release := func() {
		for _, c := range closers {
			c()
		}
	}
	defer func() {
		if err != nil {
			release() // not closeAll: an error return has set it to nil
		}
	}()
	specs := s.Stages()
	if len(specs) > 1 {
		r, err := topics.EnsureRepartition(ctx, kopts, s.Input.Topic, specs[1].Input.Topic, 30*time.Second)
		if err != nil {
			return nil, nil, err
		}
		log.Info("the input is not declared partitioned within the key: running in two stages through the repartition topic",
			"partitioned_by", s.Input.PartitionedBy, "key", s.Key, "topic", r.Name, "partitions", r.Partitions, "created", r.Created)
		if s.Input.IdleTimeout == 0 {
			log.Warn("input.idle_timeout is not set: an input partition that is empty or goes quiet holds every window of the second stage "+
				"until its next record; set it so that quiet partitions move on", "topic", s.Input.Topic)
		}
	}
	group := cfg.Kafka.Group
	if group == "" {
		group = "liveagg." + s.Name
	}
	var stages []*worker.Worker
	for i, ss := range specs {
		sinks, closeSinks, err := buildSinks(ctx, cfg, ss, kopts, s3c)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, closeSinks)
		stage, mreg := 0, reg
		if len(specs) > 1 {
			stage = i + 1
			mreg = prometheus.WrapRegistererWith(prometheus.Labels{"stage": strconv.Itoa(stage)}, reg)
		}
		w, err := worker.New(worker.Config{
			WorkerID: cfg.WorkerID, Spec: ss, Stage: stage, Source: s, KafkaOpts: kopts, Group: worker.StageGroup(group, stage), SessionTimeout: cfg.Kafka.SessionTimeout,
			Checkpoints: store, CheckpointInterval: cfg.Checkpoint.Interval, CheckpointRecords: cfg.Checkpoint.Records,
			OnMissingOffset: cfg.Checkpoint.OnMissingOffset, Sinks: sinks, Logger: log,
			Metrics: worker.NewMetrics(mreg),
		})
		if err != nil {
			return nil, nil, err
		}
		stages = append(stages, w)
	}
	return worker.NewPipeline(stages...), release, nil
}

// buildSinks opens the spec's outputs and the outbox. closeAll releases what they hold; on an
// error everything opened so far is released before it returns.
func buildSinks(ctx context.Context, cfg *config.Config, s *spec.Spec, kopts []kgoOpt, s3c *s3.Client) (sinks []sink.Sink, closeAll func(), err error) {
	var closers []func()
	release := func() {
		for _, c := range closers {
			c()
		}
	}
	defer func() {
		if err != nil {
			release() // not closeAll: an error return has set it to nil
		}
	}()
	for i, o := range s.Outputs {
		switch o.Type {
		case spec.OutputCassandra:
			if len(cfg.Sinks.Cassandra.Hosts) == 0 {
				return nil, nil, fmt.Errorf("outputs[%d] is cassandra but sinks.cassandra.hosts is empty", i)
			}
			conn, err := cfg.Sinks.Cassandra.Conn(ctx, cfg.AWS.Load)
			if err != nil {
				return nil, nil, err
			}
			sess, err := sink.NewCassandraSessionWith(ctx, conn, sink.WithTimeouts(cfg.Sinks.Cassandra.Timeout, cfg.Sinks.Cassandra.Timeout))
			if err != nil {
				return nil, nil, err
			}
			closers = append(closers, sess.Close)
			columns, err := layoutColumns(s)
			if err != nil {
				return nil, nil, err
			}
			cs, err := sink.NewCassandra(ctx, sess, sink.CassandraConfig{
				Keyspace: o.Keyspace, Table: o.Table, TTL: o.TTL.Std(), Replication: cfg.Sinks.Cassandra.Replication,
				Concurrency: cfg.Sinks.Cassandra.Concurrency,
			}, s.Key, columns)
			if err != nil {
				return nil, nil, err
			}
			sinks = append(sinks, cs)
		case spec.OutputS3:
			ss, err := sink.NewS3(s3c, o.URL)
			if err != nil {
				return nil, nil, err
			}
			sinks = append(sinks, ss)
		case spec.OutputFile:
			fs, err := sink.NewFile(o.Path)
			if err != nil {
				return nil, nil, err
			}
			sinks = append(sinks, fs)
		case spec.OutputStdout:
			sinks = append(sinks, sink.NewStdout(os.Stdout))
		}
	}
	kafkaOuts, err := worker.KafkaOutputs(s)
	if err != nil {
		return nil, nil, err
	}
	dlq := cfg.Sinks.DeadLetterTopic
	if dlq == "" {
		dlq = s.Name + ".dlq"
	}
	progress := cfg.Sinks.ProgressTopic
	if progress == "" {
		progress = s.Name + ".progress"
	}
	outbox := sink.NewKafka(kopts, kafkaOuts, dlq, progress, sink.WithTransactionTimeout(min(15*time.Minute, max(time.Minute, 2*cfg.Checkpoint.Interval))))
	parts, err := inputPartitions(ctx, kopts, s.Input.Topic, 30*time.Second)
	if err != nil {
		return nil, nil, err
	}
	if err := outbox.EnsureTopics(ctx, s.Input.Topic, parts); err != nil {
		return nil, nil, err
	}
	sinks = append(sinks, outbox)
	return sinks, release, nil
}

// sampler turns the worker's totals and status into per-interval CloudWatch samples.
func sampler(w *worker.Pipeline) func() cwpub.Sample {
	last := w.Totals()
	return func() cwpub.Sample {
		t, st := w.Totals(), w.Status()
		s := cwpub.Sample{RecordsIn: float64(t.Records - last.Records), DeadLettered: float64(t.DeadLettered - last.DeadLettered),
			SinkErrors: float64(t.SinkErrors - last.SinkErrors), IdleAdvances: float64(t.IdleAdvances - last.IdleAdvances)}
		if n := t.Records - last.Records; n > 0 {
			s.ProcessingSeconds = (t.Busy - last.Busy).Seconds() / float64(n)
		}
		for reason, n := range t.DeadLetteredByReason {
			if d := n - last.DeadLetteredByReason[reason]; d > 0 {
				if s.DeadLetteredByReason == nil {
					s.DeadLetteredByReason = map[string]float64{}
				}
				s.DeadLetteredByReason[reason] = float64(d)
			}
		}
		for _, p := range st.Partitions {
			if p.Stage <= 1 {
				// The input's lag, what the fleet must keep up with: a second stage's lag
				// (partials a checkpoint interval behind) is not more records to read.
				s.ConsumerLag += float64(p.Lag)
			}
			s.StateBytes += float64(p.StateBytes)
			s.StateSeries += float64(p.Series)
			// Only records not yet in a checkpoint are at risk: a quiet partition whose last
			// checkpoint holds everything it took has no age to alarm on.
			if !p.LastCheckpoint.IsZero() && p.NextOffset > p.LastCheckpointOffset {
				s.CheckpointAgeSeconds = max(s.CheckpointAgeSeconds, time.Since(p.LastCheckpoint).Seconds())
			}
		}
		last = t
		return s
	}
}

// adminToken reads the admin token from its SSM SecureString parameter or its file.
func adminToken(ctx context.Context, cfg *config.Config, loadAWS func(context.Context) (aws.Config, error)) (string, error) {
	if cfg.Admin.TokenSSMParameter != "" {
		ac, err := loadAWS(ctx)
		if err != nil {
			return "", err
		}
		return spot.Token(ctx, ssm.NewFromConfig(ac), cfg.Admin.TokenSSMParameter)
	}
	return readToken(cfg.Admin.TokenFile)
}

// onEC2 publishes the admin endpoint as a tag on the worker's own instance, so the control
// lambdas can find it, and watches instance metadata for a spot interruption notice, draining
// the worker if no lambda has done so first.
func onEC2(ctx context.Context, g *errgroup.Group, cfg *config.Config, w *worker.Pipeline, loadAWS func(context.Context) (aws.Config, error), log *slog.Logger) error {
	md := imds.New(imds.Options{})
	id, err := spot.InstanceID(ctx, md)
	if err != nil {
		return err
	}
	endpoint := cfg.Admin.Advertise
	if endpoint == "" {
		ip, err := spot.PrivateIP(ctx, md)
		if err != nil {
			return err
		}
		_, port, err := net.SplitHostPort(cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
		scheme := "http://"
		if cfg.Admin.TLS.Enabled() {
			scheme = "https://"
		}
		endpoint = scheme + net.JoinHostPort(ip, port)
	}
	ac, err := loadAWS(ctx)
	if err != nil {
		return err
	}
	ec := ec2.NewFromConfig(ac)
	if err := spot.PublishEndpoint(ctx, ec, id, endpoint); err != nil {
		return err
	}
	log.Info("admin endpoint published", "instance", id, "endpoint", endpoint)
	g.Go(func() error {
		spot.Watch(ctx, md, 5*time.Second, log, func(ctx context.Context, n spot.Notice) error {
			// Say so on the instance first: a lambda that arrives after this worker is gone
			// then finds the drain done instead of a refused connection.
			if err := spot.MarkDrained(ctx, ec, id, n); err != nil {
				log.Warn("could not mark the instance as drained", "err", err)
			}
			return w.Drain(ctx)
		})
		return nil
	})
	return nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", errors.New("admin.token_file is empty")
	}
	return t, nil
}

// serveOption adjusts a server that serve starts.
type serveOption func(*http.Server)

// withTLS serves HTTPS with c; nil leaves the server plain HTTP.
func withTLS(c *tls.Config) serveOption {
	return func(srv *http.Server) { srv.TLSConfig = c }
}

func serve(addr string, h http.Handler, log *slog.Logger, opts ...serveOption) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	for _, o := range opts {
		o(srv)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		run := func() error { return srv.Serve(l) }
		if srv.TLSConfig != nil {
			// The certificate is in TLSConfig; ServeTLS also answers plain HTTP with a 400.
			run = func() error { return srv.ServeTLS(l, "", "") }
		}
		if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "addr", addr, "err", err)
		}
	}()
	// stop shuts the server down and returns once its goroutine has.
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	}, nil
}
