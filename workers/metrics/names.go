// Package metrics is the one list of liveagg's metric names, shared by the workers (which
// export them to Prometheus and CloudWatch), the autoscaler (which reads them from CloudWatch),
// and the dashboards and alarms (which the Terraform modules build from the same list).
//
// Prometheus names follow <project>_<subsystem>_<thing>_<unit>; the CloudWatch name of each is
// its CloudWatch field, published in the CloudWatch namespace below with the dimensions listed.
package metrics

// Namespace is the CloudWatch namespace of every liveagg metric.
const Namespace = "liveagg"

// Metric describes one metric.
type Metric struct {
	// Prom is the Prometheus name the worker exports it as; "" for a metric only CloudWatch
	// has (the lambdas' metrics, and what Prometheus computes itself, like an age).
	Prom string
	// CloudWatch is the CloudWatch metric name; "" for a metric only Prometheus has.
	CloudWatch string
	// Unit is the CloudWatch unit.
	Unit string
	// Help says what it measures.
	Help string
}

// The metrics. Labels in Prometheus: partition (where per partition), reason, sink; a worker
// process serves one spec, so the spec is a target label of the scrape configuration, not a
// metric label. Dimensions in CloudWatch: Spec, and AutoScalingGroup for fleet-level metrics;
// DeadLettered also per Reason.
var (
	RecordsIn          = Metric{"liveagg_worker_records_in_total", "RecordsIn", "Count", "Input records consumed, per partition."}
	ConsumerLag        = Metric{"liveagg_worker_consumer_lag_records", "ConsumerLag", "Count", "Records between the worker's position and the partition's high watermark."}
	ProcessingSeconds  = Metric{"liveagg_worker_processing_seconds_per_record", "ProcessingSecondsPerRecord", "Seconds", "CPU-side seconds spent per record (decode + aggregate), the autoscaler's capacity signal."}
	StateSeries        = Metric{"liveagg_worker_state_series", "StateSeries", "Count", "Live series in memory, per partition."}
	StateBytes         = Metric{"liveagg_worker_state_bytes", "StateBytes", "Bytes", "Memory of aggregation state, per partition."}
	CheckpointAge      = Metric{"", "CheckpointAgeSeconds", "Seconds", "Seconds the oldest records not yet in a checkpoint have waited, over the worker's partitions (a quiet partition whose checkpoint holds everything counts 0)."}
	CheckpointTime     = Metric{"liveagg_worker_checkpoint_timestamp_seconds", "", "Seconds", "Unix time the partition's state was last all in a checkpoint (refreshed while it takes nothing new); age is time() minus this."}
	CheckpointDuration = Metric{"liveagg_worker_checkpoint_duration_seconds", "CheckpointDurationSeconds", "Seconds", "Time to flush sinks and save one partition's checkpoint."}
	CheckpointBytes    = Metric{"liveagg_worker_checkpoint_bytes", "CheckpointBytes", "Bytes", "Size of the last checkpoint, per partition."}
	RestoreSeconds     = Metric{"liveagg_worker_restore_seconds", "RestoreSeconds", "Seconds", "Time to claim, load and restore a partition."}
	SinkWrites         = Metric{"liveagg_worker_sink_rows_total", "SinkRows", "Count", "Rows handed to sinks."}
	SinkErrors         = Metric{"liveagg_worker_sink_errors_total", "SinkErrors", "Count", "Sink writes and flushes that failed, retries included."}
	SinkBlocked        = Metric{"liveagg_worker_sink_blocked", "SinkBlocked", "Count", "1 while a sink is unreachable and its writes are held and retried (consumption pauses)."}
	SinkLatency        = Metric{"liveagg_worker_sink_flush_seconds", "SinkFlushSeconds", "Seconds", "Time for a sink to make a checkpoint's rows durable."}
	DeadLettered       = Metric{"liveagg_worker_dead_lettered_total", "DeadLettered", "Count", "Records routed to the dead-letter topic, by reason (late is one)."}
	WindowsEmitted     = Metric{"liveagg_worker_windows_emitted_total", "WindowsEmitted", "Count", "Closed (series, window) rows emitted."}
	PartitionIdle      = Metric{"liveagg_worker_partition_idle", "", "Count", "1 while the broker confirms the partition has nothing more to read (with input.idle_timeout set)."}
	IdleAdvances       = Metric{"liveagg_worker_idle_advances_total", "IdleAdvances", "Count", "Times an idle partition's watermark was advanced by the wall clock, closing its windows."}
	OffsetLost         = Metric{"liveagg_worker_offset_lost_total", "OffsetLost", "Count", "Times a partition's offset to resume from (its checkpoint, or its position while lagging) was gone from Kafka."}
	// CPU and memory: Prometheus has the client library's process collector instead.
	CPUUtilization    = Metric{"", "CPUUtilization", "Percent", "Process CPU use over the machine's cores."}
	MemoryUtilization = Metric{"", "MemoryUtilization", "Percent", "Heap in use over the memory limit."}
	// The lambdas' metrics exist in CloudWatch only.
	SpotInterruptions = Metric{"", "SpotInterruptionsHandled", "Count", "Spot interruption events handled by the control lambda."}
	SpotDrainFailures = Metric{"", "SpotDrainFailures", "Count", "Interruption events whose worker did not drain in time (its partitions move when its session expires)."}
	DrainSeconds      = Metric{"", "DrainSeconds", "Seconds", "Time a drain took, from notice to done."}
	AutoscalerDesired = Metric{"", "DesiredWorkers", "Count", "Workers the autoscaler asked for."}
	AutoscalerRate    = Metric{"", "AutoscalerForecastRate", "Count/Second", "Ingest rate the autoscaler planned for."}
	AutoscalerNeed    = Metric{"", "AutoscalerNeededWorkers", "Count", "Workers the latest inputs need, before stabilisation and limits."}
)

// All lists every metric, for the dashboard and tests that check names stay unique.
var All = []Metric{RecordsIn, ConsumerLag, ProcessingSeconds, StateSeries, StateBytes, CheckpointAge, CheckpointTime,
	CheckpointDuration, CheckpointBytes, RestoreSeconds, SinkWrites, SinkErrors, SinkBlocked, SinkLatency, DeadLettered,
	WindowsEmitted, PartitionIdle, IdleAdvances, OffsetLost, CPUUtilization, MemoryUtilization, SpotInterruptions, SpotDrainFailures, DrainSeconds, AutoscalerDesired, AutoscalerRate, AutoscalerNeed}
