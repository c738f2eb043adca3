variable "name" {
  description = "Prefix of the functions, roles, rules and queues."
  type        = string
}

variable "stack" {
  description = "Stack name: the spot lambda only acts on instances tagged liveagg:stack with it."
  type        = string
}

variable "asg_name" {
  description = "The workers' Auto Scaling group."
  type        = string
}

variable "asg_arn" {
  description = "The workers' Auto Scaling group ARN."
  type        = string
}

variable "spec_name" {
  description = "Name of the spec the fleet runs: the Spec dimension of the workers' metrics."
  type        = string
}

variable "partitions" {
  description = "Partitions of the spec's input topic: the autoscaler never asks for more workers."
  type        = number
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
  description = "Name of the SSM SecureString with the workers' admin token."
  type        = string
}

variable "autoscaler" {
  description = "Autoscaler settings: policy (learning or capacity), cores per worker, memory per worker (for example 4GiB), dry run, lead time, target utilisation (null: the policy's default)."
  type = object({
    policy             = optional(string, "learning")
    cores_per_worker   = optional(number, 2)
    memory_per_worker  = optional(string, "4GiB")
    dry_run            = optional(bool, false)
    lead               = optional(string, "4m")
    target_utilization = optional(number)
  })
  default = {}
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
