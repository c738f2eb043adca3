output "stack" {
  description = "The stack's bucket, spec locations and fleets."
  value = {
    bucket        = module.stack.bucket
    spec_registry = module.stack.spec_registry
    specs         = module.stack.spec_locations
    fleets        = module.stack.fleets
  }
}
