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
  description = "Cassandra contact points; for Amazon Keyspaces, [\"cassandra.<region>.amazonaws.com\"]."
  type        = list(string)
}

variable "cassandra" {
  description = "How the workers connect to Cassandra: keyspaces, login (username, password_ssm_parameter or password_secret_arn), tls (enabled, ca_pem or ca_location, server_name), replication; see modules/aggregation-stack. {} for plain text without a login."
  type = object({
    keyspaces = optional(bool, false)
    login = optional(object({
      username               = optional(string)
      password_ssm_parameter = optional(string)
      password_secret_arn    = optional(string)
    }))
    tls = optional(object({
      enabled     = bool
      ca_pem      = optional(string)
      ca_location = optional(string)
      server_name = optional(string)
    }))
    replication = optional(map(string))
  })
  default = {}
}

variable "admin_tls" {
  description = "HTTPS for the workers' admin API (see modules/aggregation-stack); null for plain HTTP inside the workers' security group."
  type = object({
    cert_ssm_parameter = optional(string)
    key_ssm_parameter  = optional(string)
    secret_arn         = optional(string)
    server_name        = string
    ca_layer_arn       = string
    ca_path            = optional(string, "/opt/liveagg/admin-ca.pem")
  })
  default = null
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
