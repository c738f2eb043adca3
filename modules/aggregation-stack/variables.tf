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
  description = "Cassandra contact points for the rollup tables, host or host:port; with cassandra.keyspaces, [] (the default) means the region's endpoint, cassandra.<region>.amazonaws.com."
  type        = list(string)
  default     = []
}

variable "cassandra" {
  description = "How the workers connect to Cassandra, for every fleet (a fleet may override the login). keyspaces: Amazon Keyspaces (TLS on 9142, SingleRegionStrategy, and SigV4 with each fleet's role, granted only the keyspaces and tables its spec writes, unless a login is set). login: password authentication, null for none: username, and the password from exactly one of password_ssm_parameter (an SSM SecureString name; needs username) or password_secret_arn (the full ARN of a Secrets Manager secret: the password, or {\"username\", \"password\"}); never the password itself. tls: null for plain text, or enabled, the CA as ca_pem (PEM text) or ca_location (s3://bucket/key fetched at boot) or neither (system roots), and server_name (the name on the nodes' certificates). replication: the keyspaces' replication map (null: SimpleStrategy with one replica; with keyspaces it is SingleRegionStrategy), for the rollup tables and the workers alike. See modules/spot-workers for each setting's checks."
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
  default  = {}
  nullable = false

  validation {
    condition     = !var.cassandra.keyspaces || var.cassandra.replication == null || try(var.cassandra.replication.class, "") == "SingleRegionStrategy"
    error_message = "Amazon Keyspaces takes only SingleRegionStrategy replication: leave cassandra.replication unset with keyspaces = true."
  }
}

variable "admin_tls" {
  description = "Serve the workers' admin API over HTTPS, verified by the spot function; null (the default) for plain HTTP, which only the spot function's security group can reach. The workers' certificate and key: cert_ssm_parameter and key_ssm_parameter (SSM parameter names; the key a SecureString), or secret_arn (the full ARN of a Secrets Manager secret {\"cert\": \"<PEM>\", \"key\": \"<PEM>\"}). server_name: the DNS name on that certificate, which the spot function checks. ca_layer_arn: a Lambda layer version with the CA bundle that signed it; ca_path: its file under /opt (default /opt/liveagg/admin-ca.pem). One setting for the stack: its one spot function verifies every fleet."
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

variable "secrets_kms_key_arn" {
  description = "ARN of the customer managed KMS key the stack's SSM SecureStrings and Secrets Manager secrets (admin token, Cassandra password, admin TLS key) are encrypted with: the workers and the spot function are granted kms:Decrypt on it through SSM and Secrets Manager only. null (the default) for the AWS managed keys, which need no grant."
  type        = string
  default     = null
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
  description = "A worker fleet per spec key (every spec needs one): its peak load in records per second and live series, from which the fleet plan sizes it; vCPUs per worker; the instance types (all of one architecture, matching ami_id and the binary); and, to override the derived thresholds, its lag alarm threshold in records and its dead-letter alarm threshold in records per minute; and cassandra_login, to log this fleet in as its own Cassandra role instead of cassandra.login (same fields)."
  type = map(object({
    peak_records_per_second       = number
    live_series                   = number
    cores_per_worker              = optional(number, 2)
    instance_types                = optional(list(string), ["m7g.large", "m6g.large", "c7g.xlarge", "r7g.large"])
    lag_alarm_records             = optional(number)
    dead_letters_alarm_per_minute = optional(number)
    cassandra_login = optional(object({
      username               = optional(string)
      password_ssm_parameter = optional(string)
      password_secret_arn    = optional(string)
    }))
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
