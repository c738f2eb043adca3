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
  description = "Cassandra contact points, host or host:port; for Amazon Keyspaces, [\"cassandra.<region>.amazonaws.com\"]."
  type        = list(string)
}

variable "cassandra_keyspaces" {
  description = "The rollup tables are in Amazon Keyspaces: TLS on 9142, SingleRegionStrategy, and SigV4 with each fleet's role (granted only its spec's tables) unless a password is set."
  type        = bool
  default     = false
}

variable "cassandra_username" {
  description = "Cassandra role the workers and the provider log in as (Keyspaces: a service-specific credential's user name); null for no password authentication, or to take it from the password secret."
  type        = string
  default     = null
}

variable "cassandra_password_ssm_parameter" {
  description = "Name of the SSM SecureString holding the Cassandra password (made beforehand, kept out of state); null for none. Not with cassandra_password_secret_arn."
  type        = string
  default     = null
}

variable "cassandra_password_secret_arn" {
  description = "Full ARN of a Secrets Manager secret holding the Cassandra password, or {\"username\", \"password\"}; null for none. Not with cassandra_password_ssm_parameter."
  type        = string
  default     = null
}

variable "cassandra_tls" {
  description = "Connect to Cassandra with TLS, verifying the nodes' certificates (always on with Keyspaces)."
  type        = bool
  default     = false
}

variable "cassandra_ca_file" {
  description = "PEM file, on the machine running Terraform, of the CA that signs the Cassandra nodes' certificates: the provider verifies with it, and the workers get its contents in their user data. null for the system roots."
  type        = string
  default     = null
}

variable "cassandra_server_name" {
  description = "Name on the Cassandra nodes' certificates, when the contact points are addresses they do not name; null to check each address."
  type        = string
  default     = null
}

variable "admin_tls" {
  description = "HTTPS for the workers' admin API (see modules/aggregation-stack): the certificate and key from cert_ssm_parameter and key_ssm_parameter or from secret_arn, the DNS name on it (server_name), and the Lambda layer with its CA (ca_layer_arn; ca_path, default /opt/liveagg/admin-ca.pem). null for plain HTTP inside the workers' security group."
  type = object({
    cert_ssm_parameter = optional(string)
    key_ssm_parameter  = optional(string)
    secret_arn         = optional(string)
    server_name        = string
    ca_layer_arn       = string
    ca_path            = optional(string)
  })
  default = null
}

variable "secrets_kms_key_arn" {
  description = "Customer managed KMS key of the admin token, the Cassandra password and the admin TLS key; null for the AWS managed keys."
  type        = string
  default     = null
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
