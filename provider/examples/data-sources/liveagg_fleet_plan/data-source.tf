data "liveagg_fleet_plan" "l1" {
  spec                    = liveagg_aggregation_spec.l1.yaml
  peak_records_per_second = 1500000
  live_series             = 3000000
  cores_per_worker        = 2
  partitions              = 48
}

output "workers" {
  value = "${data.liveagg_fleet_plan.l1.min_workers}-${data.liveagg_fleet_plan.l1.max_workers} workers of ${data.liveagg_fleet_plan.l1.instance_memory_mib} MiB"
}
