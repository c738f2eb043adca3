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
  description = "Kafka: bootstrap servers, TLS, SASL mechanism (aws-msk-iam or empty) and the MSK cluster ARN for IAM authentication."
  type = object({
    brokers         = list(string)
    tls             = optional(bool, true)
    sasl_mechanism  = optional(string, "aws-msk-iam")
    msk_cluster_arn = optional(string)
  })
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
  description = "A worker fleet per spec key: its peak load, from which the fleet plan sizes it, and the instance types (all of one architecture, matching ami_id and the binary)."
  type = map(object({
    peak_records_per_second = number
    live_series             = number
    cores_per_worker        = optional(number, 2)
    instance_types          = optional(list(string), ["m7g.large", "m6g.large", "c7g.xlarge", "r7g.large"])
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

variable "lag_alarm_records" {
  description = "Consumer lag in records above which a fleet's lag alarm fires."
  type        = number
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
