variable "name" {
  description = "Name of the fleet: the Auto Scaling group, launch template, role and security group."
  type        = string
}

variable "stack" {
  description = "Stack name, tagged on every instance as liveagg:stack; the spot lambda acts only on instances with this tag."
  type        = string
}

variable "vpc_id" {
  description = "VPC the workers run in."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets to spread the workers over, one per availability zone for spot capacity."
  type        = list(string)
}

variable "vpc_cidr" {
  description = "CIDR allowed to scrape the workers' Prometheus metrics port."
  type        = string
}

variable "lambda_security_group_id" {
  description = "Security group of the control lambdas: the only source allowed on the admin port."
  type        = string
}

variable "ami_id" {
  description = "AMI for the workers (an Amazon Linux 2023 image of the instance types' architecture)."
  type        = string
}

variable "instance_types" {
  description = "Instance types the spot fleet may use; several, of one architecture, so spot capacity is found."
  type        = list(string)
  default     = ["m7g.large", "m6g.large", "c7g.xlarge", "r7g.large"]
}

variable "min_size" {
  description = "Fewest workers."
  type        = number
  default     = 1
}

variable "max_size" {
  description = "Most workers (the fleet plan's max_workers)."
  type        = number
}

variable "binary_location" {
  description = "s3://bucket/key of the liveagg binary for the instances' architecture."
  type        = string

  validation {
    condition     = can(regex("^s3://[^/]+/.+$", var.binary_location))
    error_message = "binary_location is an s3://bucket/key location."
  }
}

variable "spec_location" {
  description = "s3:// location of the spec the workers run (the liveagg_aggregation_spec's location)."
  type        = string
}

variable "spec_name" {
  description = "Name of the spec the fleet runs (its name: field): the first folder of its checkpoint keys and of its S3 outputs' keys, and so the only prefixes the workers may write."
  type        = string

  validation {
    condition     = can(regex("^[^/*?]+$", var.spec_name))
    error_message = "spec_name is the spec's name: no slash or IAM wildcard (* ?) in it."
  }
}

variable "spec_registry" {
  description = "s3://bucket/prefix of the spec registry (modules/checkpoint-store's spec_registry): the workers may read it and never write it; spec_location must be inside it."
  type        = string

  validation {
    condition     = can(regex("^s3://[^/]+/[^*?]+$", var.spec_registry))
    error_message = "spec_registry is an s3://bucket/prefix location with a prefix (a registry at the bucket's root would leave no room for the checkpoints), and no IAM wildcard."
  }
}

variable "checkpoint_location" {
  description = "s3://bucket/prefix of the checkpoints: the workers read, write and delete only under <prefix>/<spec_name>/, where the store keeps this spec's partitions."
  type        = string

  validation {
    condition     = can(regex("^s3://[^/]+(/[^*?]*)?$", var.checkpoint_location))
    error_message = "checkpoint_location is an s3://bucket/prefix location without IAM wildcards."
  }
}

variable "s3_output_locations" {
  description = "The url of each s3 output of the spec (s3://bucket/prefix): the workers may put objects only under <prefix>/<spec_name>/, where the S3 sink writes."
  type        = list(string)
  default     = []

  validation {
    condition     = length([for l in var.s3_output_locations : l if !can(regex("^s3://[^/]+(/[^*?]*)?$", l))]) == 0
    error_message = "Each s3_output_locations entry is an s3://bucket/prefix location without IAM wildcards."
  }
}

variable "checkpoint_interval" {
  description = "Time between a partition's checkpoints."
  type        = string
  default     = "30s"
}

variable "on_missing_offset" {
  description = "What a worker does when a checkpointed offset is no longer in Kafka: stop, or earliest."
  type        = string
  default     = "stop"

  validation {
    condition     = contains(["stop", "earliest"], var.on_missing_offset)
    error_message = "on_missing_offset is stop or earliest."
  }
}

variable "kafka_brokers" {
  description = "Kafka bootstrap servers."
  type        = list(string)
}

variable "kafka_tls" {
  description = "Connect to Kafka with TLS."
  type        = bool
  default     = true
}

variable "kafka_sasl_mechanism" {
  description = "Kafka SASL mechanism: aws-msk-iam, or \"\" for none; null (the default) means aws-msk-iam when msk_cluster_arn is set and none otherwise."
  type        = string
  default     = null

  validation {
    condition     = var.kafka_sasl_mechanism == null || contains(["aws-msk-iam", ""], var.kafka_sasl_mechanism)
    error_message = "kafka_sasl_mechanism is aws-msk-iam or \"\"."
  }
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>), for the IAM authentication permissions; null when kafka_sasl_mechanism is not aws-msk-iam."
  type        = string
  default     = null

  validation {
    condition     = var.msk_cluster_arn == null || can(regex("^arn:[^:]+:kafka:[^:]*:[0-9]*:cluster/[^/]+/[^/]+$", var.msk_cluster_arn))
    error_message = "msk_cluster_arn is an MSK cluster ARN (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>), or null."
  }
}

variable "cassandra_hosts" {
  description = "Cassandra contact points for Cassandra outputs."
  type        = list(string)
  default     = []
}

variable "admin_token_parameter" {
  description = "Name of the SSM SecureString holding the admin API token (shared with the spot lambda)."
  type        = string
}

variable "admin_port" {
  description = "Port of the worker admin API."
  type        = number
  default     = 7070
}

variable "metrics_port" {
  description = "Port of the worker's Prometheus metrics."
  type        = number
  default     = 9100
}

variable "memory_limit_mib" {
  description = "Soft memory limit for the Go runtime (GOMEMLIMIT), below the instance's memory (the fleet plan's instance_memory_mib)."
  type        = number
}

variable "tags" {
  description = "Tags for every resource and instance."
  type        = map(string)
  default     = {}
}
