variable "name" {
  description = "Prefix of the functions, roles, rules and queues: the stack's spot function is <name>-spotinterrupt, a fleet's autoscaler <name>-<fleet>-autoscaler."
  type        = string
}

variable "stack" {
  description = "Stack name: the spot lambda only acts on instances tagged liveagg:stack with it, and may tag no other instance."
  type        = string
}

variable "fleets" {
  description = "The stack's fleets, by key: each one's Auto Scaling group, the name of the spec it runs (the Spec dimension of its metrics), its input topic's partitions (the autoscaler never asks for more workers) and its autoscaler settings: policy (learning or capacity), cores per worker, memory per worker (for example 4GiB), dry run, lead time, target utilisation (null: the policy's default). One spot function serves every group; each fleet has its own autoscaler."
  type = map(object({
    asg_name   = string
    spec_name  = string
    partitions = number
    autoscaler = optional(object({
      policy             = optional(string, "learning")
      cores_per_worker   = optional(number, 2)
      memory_per_worker  = optional(string, "4GiB")
      dry_run            = optional(bool, false)
      lead               = optional(string, "4m")
      target_utilization = optional(number)
    }), {})
  }))

  validation {
    condition     = length(var.fleets) > 0
    error_message = "fleets needs at least one fleet: the spot function has no group to serve otherwise."
  }
}

variable "dist_dir" {
  description = "Folder holding the zips `make lambdas` builds (<name>-<arch>.zip)."
  type        = string
}

variable "architecture" {
  description = "Lambda architecture: arm64 or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture is arm64 or x86_64."
  }
}

variable "subnet_ids" {
  description = "Subnets the spot lambda runs in, to reach the workers' admin API."
  type        = list(string)
}

variable "vpc_id" {
  description = "VPC of the workers."
  type        = string
}

variable "admin_port" {
  description = "Port of the worker admin API."
  type        = number
  default     = 7070
}

variable "admin_token_parameter" {
  description = "Name of the SSM SecureString with the workers' admin token: the spot lambda may read this parameter and no other."
  type        = string
}

variable "log_retention_days" {
  description = "Days the functions' logs are kept."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
