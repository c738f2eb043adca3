output "bucket" {
  description = "The checkpoint and spec bucket."
  value       = module.store.bucket
}

output "spec_locations" {
  description = "Where each spec is stored."
  value       = module.pipeline.spec_locations
}

output "fleets" {
  description = "Per fleet: its Auto Scaling group, its plan, its dashboard."
  value = { for k, w in module.workers : k => {
    asg       = w.asg_name
    plan      = module.pipeline.fleet_plans[k]
    dashboard = module.monitoring[k].dashboard_name
  } }
}
