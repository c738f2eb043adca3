output "spec_locations" {
  description = "Where each spec is stored, by spec key: the location a worker's config names."
  value       = { for k, s in liveagg_aggregation_spec.this : k => s.location }
}

output "spec_versions" {
  description = "Each stored spec's version (ETag), by spec key: it changes whenever the spec does."
  value       = { for k, s in liveagg_aggregation_spec.this : k => s.version }
}

output "spec_names" {
  description = "Each spec's name, by spec key."
  value       = { for k, s in liveagg_aggregation_spec.this : k => s.name }
}

output "topics" {
  description = "Partition count of each topic, by name."
  value       = { for k, t in liveagg_kafka_topic.this : k => t.partitions }
}

output "rollup_tables" {
  description = "The Cassandra tables made for the specs' outputs, keyspace.table."
  value       = keys(liveagg_rollup_table.this)
}

output "fleet_plans" {
  description = "Per spec key with a fleet entry: worker count bounds, instance memory, the planned peak input rate and one worker's rate at full use (records/s), and the input topic's partitions."
  value = { for k, p in data.liveagg_fleet_plan.this : k => {
    min_workers                   = p.min_workers
    max_workers                   = p.max_workers
    instance_memory_mib           = p.instance_memory_mib
    peak_records_per_second       = p.peak_records_per_second
    records_per_second_per_worker = p.records_per_second_per_worker
    partitions                    = p.partitions
  } }
}
