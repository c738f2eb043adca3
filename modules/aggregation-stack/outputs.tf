output "bucket" {
  description = "The checkpoint and spec bucket."
  value       = module.store.bucket
}

output "spec_registry" {
  description = "s3://bucket/specs: the liveagg provider's spec_registry.location for this stack."
  value       = module.store.spec_registry
}

output "spec_locations" {
  description = "Where each spec is stored."
  value       = module.pipeline.spec_locations
}

output "fleets" {
  description = "Per fleet: its Auto Scaling group, its plan, its dashboard, its lag alarm threshold in records and its dead-letter alarm threshold in records per minute."
  value = { for k, w in module.workers : k => {
    asg               = w.asg_name
    plan              = try(module.pipeline.fleet_plans[k], null)
    dashboard         = try(module.monitoring[k].dashboard_name, null)
    lag_alarm_records = try(local.lag_alarm_records[k], null)
    # Records per minute.
    dead_letters_alarm_per_minute = try(local.dead_letters_alarm_per_minute[k], null)
  } }
}
