variable "name" {
  description = "Stack name: prefix of every resource and the liveagg:stack tag of its instances."
  type        = string
}

variable "bucket_name" {
  description = "Name of the checkpoint and spec bucket (globally unique)."
  type        = string
}

variable "network" {
  description = "Where the workers and the spot lambda run: VPC, its CIDR, and private subnets in several availability zones."
  type = object({
    vpc_id     = string
    vpc_cidr   = string
    subnet_ids = list(string)
  })
}

variable "kafka" {
  description = "Kafka as the workers reach it: bootstrap servers, TLS (default true), SASL mechanism (aws-msk-iam, or \"\" for none; unset: aws-msk-iam when msk_cluster_arn is set, none otherwise) and the MSK cluster ARN, required with aws-msk-iam for the workers' kafka-cluster permissions."
  type = object({
    brokers         = list(string)
    tls             = optional(bool, true)
    sasl_mechanism  = optional(string)
    msk_cluster_arn = optional(string)
  })

  validation {
    condition     = var.kafka.sasl_mechanism == null || contains(["aws-msk-iam", ""], var.kafka.sasl_mechanism)
    error_message = "kafka.sasl_mechanism is aws-msk-iam (then set msk_cluster_arn) or \"\" for none."
  }
}

variable "cassandra_hosts" {
  description = "Cassandra contact points for the rollup tables."
  type        = list(string)
  default     = []
}

variable "topics" {
  description = "The pipeline's topics (see modules/pipeline)."
  type = map(object({
    partitions         = number
    replication_factor = optional(number)
    config             = optional(map(string))
  }))
}

variable "specs" {
  description = "The pipeline's spec YAML documents, by key (see modules/pipeline)."
  type        = map(string)
}

variable "fleets" {
  description = "A worker fleet per spec key (every spec needs one): its peak load in records per second and live series, from which the fleet plan sizes it; vCPUs per worker; the instance types (all of one architecture, matching ami_id and the binary); and, to override the derived thresholds, its lag alarm threshold in records and its dead-letter alarm threshold in records per minute."
  type = map(object({
    peak_records_per_second       = number
    live_series                   = number
    cores_per_worker              = optional(number, 2)
    instance_types                = optional(list(string), ["m7g.large", "m6g.large", "c7g.xlarge", "r7g.large"])
    lag_alarm_records             = optional(number)
    dead_letters_alarm_per_minute = optional(number)
  }))
}

variable "ami_id" {
  description = "Amazon Linux 2023 AMI for the workers."
  type        = string
}

variable "binary_location" {
  description = "s3:// location of the liveagg binary for the workers' architecture."
  type        = string
}

variable "lambda_dist_dir" {
  description = "Folder with the zips `make lambdas` builds."
  type        = string
}

variable "admin_token_parameter" {
  description = "Name of an existing SSM SecureString holding the workers' admin token (kept out of Terraform state)."
  type        = string
}

variable "lag_alarm_seconds" {
  description = "How far behind, in seconds of its planned peak input, a fleet may fall before its lag alarm fires: each fleet's threshold is its peak_records_per_second times this, and at least one poll (10,000 records) per worker at the plan's max_workers."
  type        = number
  default     = 60

  validation {
    condition     = var.lag_alarm_seconds > 0
    error_message = "lag_alarm_seconds must be positive."
  }
}

variable "dead_letter_alarm_fraction" {
  description = "Share of a fleet's planned peak input that may be dead-lettered before its dead-letter alarm fires (5 minutes in a row): each fleet's threshold is peak_records_per_second × 60 × this, in records per minute, and at least 10. Late records count too: raise it for input that is often later than the specs' allowed_lateness."
  type        = number
  default     = 0.001

  validation {
    condition     = var.dead_letter_alarm_fraction > 0 && var.dead_letter_alarm_fraction <= 1
    error_message = "dead_letter_alarm_fraction is a share of the input: more than 0, at most 1."
  }
}

variable "force_destroy" {
  description = "Let `destroy` delete the checkpoint and spec bucket with everything in it, every object version included (test stacks). false keeps a stack's checkpoints from going with it."
  type        = bool
  default     = false
}

variable "alarm_actions" {
  description = "SNS topics notified by the alarms."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for everything."
  type        = map(string)
  default     = {}
}
