variable "region" {
  description = "AWS region of the stack, its MSK cluster and its bucket."
  type        = string
}

variable "bucket_name" {
  description = "Checkpoint and spec bucket name (globally unique)."
  type        = string
}

variable "network" {
  description = "VPC, its CIDR and private subnets for the workers."
  type = object({
    vpc_id     = string
    vpc_cidr   = string
    subnet_ids = list(string)
  })
}

variable "kafka_brokers" {
  description = "MSK bootstrap servers (IAM authentication)."
  type        = list(string)
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster."
  type        = string
}

variable "cassandra_hosts" {
  description = "Cassandra contact points."
  type        = list(string)
}

variable "ami_id" {
  description = "Amazon Linux 2023 arm64 AMI."
  type        = string
}

variable "binary_location" {
  description = "s3:// location of the linux/arm64 liveagg binary."
  type        = string
}

variable "admin_token_parameter" {
  description = "SSM SecureString with the workers' admin token."
  type        = string
}

variable "force_destroy" {
  description = "Let destroy delete the bucket with its checkpoints and specs (every version): true for a test stack only."
  type        = bool
  default     = false
}
