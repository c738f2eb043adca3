output "stack" {
  description = "The stack's bucket, spec locations and fleets."
  value = {
    bucket = module.stack.bucket
    specs  = module.stack.spec_locations
    fleets = module.stack.fleets
  }
}
