variable "name" {
  description = "Stack name."
  type        = string
  default     = "indoor"
}

variable "environment" {
  description = "Environment tag, such as prod or staging."
  type        = string
}

variable "region" {
  description = "AWS region of the stack."
  type        = string
}

variable "bucket_name" {
  description = "Name of the checkpoint and spec bucket (globally unique)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the workers."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of that VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets, one per availability zone."
  type        = list(string)
}

variable "kafka_brokers" {
  description = "MSK bootstrap servers for IAM authentication (port 9098)."
  type        = list(string)
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>)."
  type        = string
}

variable "cassandra_hosts" {
  description = "Cassandra (or Amazon Keyspaces) contact points."
  type        = list(string)
}

variable "ami_id" {
  description = "Amazon Linux 2023 arm64 AMI for the workers."
  type        = string
}

variable "binary_location" {
  description = "s3:// location of the linux/arm64 liveagg binary."
  type        = string
}

variable "admin_token_parameter" {
  description = "Name of the SSM SecureString holding the workers' admin token."
  type        = string
  default     = "/liveagg/indoor/admin-token"
}

variable "alarm_topic_arn" {
  description = "SNS topic for alarms; null for none."
  type        = string
  default     = null
}

variable "lag_alarm_seconds" {
  description = "Seconds of its peak input a fleet may fall behind before its lag alarm fires."
  type        = number
  default     = 60
}

variable "force_destroy" {
  description = "Let destroy delete the checkpoint and spec bucket with every object version in it. Keep false for a stack whose checkpoints matter; set true (and apply) before destroying a test stack."
  type        = bool
  default     = false
}
