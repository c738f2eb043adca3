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
  description = "Cassandra contact points for Cassandra outputs, host or host:port; with cassandra_keyspaces, [] (the default) means the region's endpoint, cassandra.<region>.amazonaws.com."
  type        = list(string)
  default     = []
}

variable "cassandra_keyspaces" {
  description = "Connect to Amazon Keyspaces instead of a Cassandra cluster: TLS on port 9142, SingleRegionStrategy keyspaces, and SigV4 authentication with the instance role unless cassandra_login is set (service-specific credentials). With SigV4 the role is granted cassandra:Select, Modify and Create on the keyspaces and tables in cassandra_tables, and Select on the system keyspaces the driver reads. cassandra_hosts defaults to cassandra.<region>.amazonaws.com."
  type        = bool
  default     = false
  nullable    = false
}

variable "cassandra_tables" {
  description = "The keyspace and table of each Cassandra output of the spec (its outputs of type cassandra): with Amazon Keyspaces and SigV4, the only keyspaces and tables the workers may create, read and write. Unused otherwise."
  type = list(object({
    keyspace = string
    table    = string
  }))
  default  = []
  nullable = false

  validation {
    condition     = length([for t in var.cassandra_tables : t if !can(regex("^[A-Za-z0-9_]+$", t.keyspace)) || !can(regex("^[A-Za-z0-9_]+$", t.table))]) == 0
    error_message = "cassandra_tables entries name a keyspace and a table: letters, digits and underscores only (no IAM wildcard)."
  }
}

variable "cassandra_login" {
  description = "Cassandra password authentication (also Amazon Keyspaces service-specific credentials); null (the default) for none, or SigV4 with Keyspaces. username: the role to log in as. The password is never given to Terraform: set exactly one of password_ssm_parameter (the name of an SSM SecureString holding the password; username is then required) or password_secret_arn (the full ARN, with its six-character suffix, of a Secrets Manager secret whose string is the password or a JSON object {\"username\", \"password\"}; username may then come from the secret). The role may read that parameter or secret and no other."
  type = object({
    username               = optional(string)
    password_ssm_parameter = optional(string)
    password_secret_arn    = optional(string)
  })
  default = null

  validation {
    condition     = var.cassandra_login == null ? true : (var.cassandra_login.password_ssm_parameter == null) != (var.cassandra_login.password_secret_arn == null)
    error_message = "cassandra_login sets exactly one of password_ssm_parameter or password_secret_arn: the password is read from one place (set cassandra_login to null for no password authentication)."
  }
  validation {
    condition     = var.cassandra_login == null ? true : (var.cassandra_login.password_ssm_parameter == null || var.cassandra_login.username != null)
    error_message = "cassandra_login.username is required with password_ssm_parameter: the parameter holds only the password."
  }
  validation {
    condition     = var.cassandra_login == null ? true : var.cassandra_login.password_ssm_parameter == null || can(regex("^/?[A-Za-z0-9_.\\-/]+$", var.cassandra_login.password_ssm_parameter))
    error_message = "cassandra_login.password_ssm_parameter is an SSM parameter name, such as /liveagg/indoor/cassandra-password (not an ARN, no wildcard)."
  }
  validation {
    condition     = var.cassandra_login == null ? true : var.cassandra_login.password_secret_arn == null || can(regex("^arn:[^:]+:secretsmanager:[^:]+:[0-9]{12}:secret:[^*?]+-[A-Za-z0-9]{6}$", var.cassandra_login.password_secret_arn))
    error_message = "cassandra_login.password_secret_arn is the full ARN of a Secrets Manager secret, arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters> (the role is granted that one secret)."
  }
}

variable "cassandra_tls" {
  description = "TLS to Cassandra; null (the default) for plain text (Amazon Keyspaces always uses TLS). enabled: encrypt and verify every node's certificate. The CA the certificates chain to: ca_pem (the PEM bundle itself, written into the instance's user data: a CA certificate is not a secret) or ca_location (s3://bucket/key of the bundle, fetched at boot; the role may read that object), or neither for the system roots. server_name: the name every node's certificate carries, when the contact points are addresses the certificates do not name; null to check each address dialled."
  type = object({
    enabled     = bool
    ca_pem      = optional(string)
    ca_location = optional(string)
    server_name = optional(string)
  })
  default = null

  validation {
    condition     = var.cassandra_tls == null ? true : var.cassandra_tls.enabled || (var.cassandra_tls.ca_pem == null && var.cassandra_tls.ca_location == null && var.cassandra_tls.server_name == null)
    error_message = "cassandra_tls sets a CA or server_name without enabled = true: they would be ignored."
  }
  validation {
    condition     = var.cassandra_tls == null ? true : var.cassandra_tls.ca_pem == null || var.cassandra_tls.ca_location == null
    error_message = "cassandra_tls sets both ca_pem and ca_location: the CA comes from one of them."
  }
  validation {
    condition     = var.cassandra_tls == null ? true : var.cassandra_tls.ca_pem == null || can(regex("-----BEGIN CERTIFICATE-----", var.cassandra_tls.ca_pem))
    error_message = "cassandra_tls.ca_pem is a PEM bundle of CA certificates (-----BEGIN CERTIFICATE-----), not a file name: use file(\"ca.pem\")."
  }
  validation {
    condition     = var.cassandra_tls == null ? true : var.cassandra_tls.ca_location == null || can(regex("^s3://[^/]+/[^*?]+$", var.cassandra_tls.ca_location))
    error_message = "cassandra_tls.ca_location is an s3://bucket/key location, without IAM wildcards."
  }
}

variable "cassandra_replication" {
  description = "Replication of the keyspaces the workers create when they do not exist, for example { class = \"NetworkTopologyStrategy\", us-east-1 = \"3\" }; null for the worker's default (SimpleStrategy with one replica, SingleRegionStrategy with Amazon Keyspaces)."
  type        = map(string)
  default     = null

  validation {
    condition     = var.cassandra_replication == null ? true : contains(keys(var.cassandra_replication), "class")
    error_message = "cassandra_replication needs a class, such as NetworkTopologyStrategy."
  }
}

variable "admin_tls" {
  description = "Serve the admin API over HTTPS; null (the default) for plain HTTP, which the security group limits to the control lambdas. The certificate and key come from exactly one place: cert_ssm_parameter and key_ssm_parameter (names of SSM parameters holding the PEM certificate chain and the PEM key, the key a SecureString), or secret_arn (the full ARN of a Secrets Manager secret holding {\"cert\": \"<PEM>\", \"key\": \"<PEM>\"}). The role may read those and nothing else."
  type = object({
    cert_ssm_parameter = optional(string)
    key_ssm_parameter  = optional(string)
    secret_arn         = optional(string)
  })
  default = null

  validation {
    condition = var.admin_tls == null ? true : (
      (var.admin_tls.cert_ssm_parameter != null && var.admin_tls.key_ssm_parameter != null && var.admin_tls.secret_arn == null) ||
    (var.admin_tls.cert_ssm_parameter == null && var.admin_tls.key_ssm_parameter == null && var.admin_tls.secret_arn != null))
    error_message = "admin_tls sets either cert_ssm_parameter and key_ssm_parameter, or secret_arn: the certificate and key come from one place (set admin_tls to null for plain HTTP)."
  }
  validation {
    condition = var.admin_tls == null ? true : length([for p in [var.admin_tls.cert_ssm_parameter, var.admin_tls.key_ssm_parameter] :
    p if p != null && !can(regex("^/?[A-Za-z0-9_.\\-/]+$", p))]) == 0
    error_message = "admin_tls.cert_ssm_parameter and key_ssm_parameter are SSM parameter names, such as /liveagg/indoor/admin-key (not ARNs, no wildcard)."
  }
  validation {
    condition     = var.admin_tls == null ? true : var.admin_tls.secret_arn == null || can(regex("^arn:[^:]+:secretsmanager:[^:]+:[0-9]{12}:secret:[^*?]+-[A-Za-z0-9]{6}$", var.admin_tls.secret_arn))
    error_message = "admin_tls.secret_arn is the full ARN of a Secrets Manager secret, arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>."
  }
}

variable "secrets_kms_key_arn" {
  description = "ARN of the customer managed KMS key the workers' SSM SecureString parameters and Secrets Manager secrets (admin token, Cassandra password, admin TLS key) are encrypted with; the role is then granted kms:Decrypt on that key, only through SSM and Secrets Manager (a kms:ViaService condition). null (the default) when they use the AWS managed keys aws/ssm and aws/secretsmanager, which need no grant."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_kms_key_arn == null || can(regex("^arn:[^:]+:kms:[^:]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn is a KMS key ARN, arn:aws:kms:<region>:<account>:key/<key id> (not an alias), or null."
  }
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
