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

variable "admin_tls" {
  description = "How the spot function verifies the workers' admin API over HTTPS (set it when the workers' admin_tls is set); null (the default) for plain HTTP inside the workers' security group. ca_layer_arn: the ARN of a Lambda layer version holding the PEM bundle of the CA that signs the workers' admin certificates; the function runs with that layer, mounted under /opt. ca_path: where the bundle is in the layer (default /opt/liveagg/admin-ca.pem, a zip with liveagg/admin-ca.pem at its root). server_name: the DNS name the workers' certificate carries, checked instead of each instance's private IP (one certificate serves every worker, so it cannot name their addresses)."
  type = object({
    ca_layer_arn = string
    ca_path      = optional(string, "/opt/liveagg/admin-ca.pem")
    server_name  = string
  })
  default = null

  validation {
    condition     = var.admin_tls == null ? true : can(regex("^arn:[^:]+:lambda:[^:]+:[0-9]{12}:layer:[A-Za-z0-9_-]+:[0-9]+$", var.admin_tls.ca_layer_arn))
    error_message = "admin_tls.ca_layer_arn is a Lambda layer version ARN, arn:aws:lambda:<region>:<account>:layer:<name>:<version>."
  }
  validation {
    condition     = var.admin_tls == null ? true : startswith(var.admin_tls.ca_path, "/opt/")
    error_message = "admin_tls.ca_path is a file in the layer, under /opt where Lambda mounts layers."
  }
  validation {
    condition     = var.admin_tls == null ? true : can(regex("^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$", var.admin_tls.server_name))
    error_message = "admin_tls.server_name is the DNS name on the workers' admin certificate, such as admin.indoor.liveagg.internal."
  }
}

variable "secrets_kms_key_arn" {
  description = "ARN of the customer managed KMS key the admin token parameter is encrypted with: the spot function is granted kms:Decrypt on it through SSM only (a kms:ViaService condition). null (the default) for the AWS managed key aws/ssm, which needs no grant."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_kms_key_arn == null || can(regex("^arn:[^:]+:kms:[^:]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn is a KMS key ARN, arn:aws:kms:<region>:<account>:key/<key id> (not an alias), or null."
  }
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
