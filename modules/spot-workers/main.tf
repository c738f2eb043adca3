data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region = data.aws_region.current.region
  binary = regex("^s3://([^/]+)/(.+)$", var.binary_location)
  # "" leaves the MSK IAM statement out of the policy (null is the variable's default).
  msk_cluster_arn = var.msk_cluster_arn == null ? "" : var.msk_cluster_arn
  kafka_sasl      = var.kafka_sasl_mechanism != null ? var.kafka_sasl_mechanism : (var.msk_cluster_arn != null ? "aws-msk-iam" : "")
  tags            = merge(var.tags, { "liveagg:stack" = var.stack })

  # s3://bucket/prefix as [bucket, prefix without a slash at either end].
  checkpoint = regex("^s3://([^/]+)/*(.*?)/*$", var.checkpoint_location)
  registry   = regex("^s3://([^/]+)/*(.*?)/*$", var.spec_registry)
  outputs    = [for l in var.s3_output_locations : regex("^s3://([^/]+)/*(.*?)/*$", l)]
  # What the workers may write, as bucket and key prefix: their own spec's checkpoints (the
  # store keys a partition <location>/<spec>/<topic>/<partition>/...) and their spec's S3
  # outputs (the sink keys a window <url>/<spec>/size=.../...). Nothing else, the spec registry
  # least of all: the specs are written by whoever runs Terraform.
  checkpoint_prefix = join("/", compact([local.checkpoint[1], var.spec_name]))
  output_writes     = [for o in local.outputs : { bucket = o[0], prefix = join("/", compact([o[1], var.spec_name])) }]
  writes            = concat([{ bucket = local.checkpoint[0], prefix = local.checkpoint_prefix }], local.output_writes)
  # A write prefix that contains the registry, or lies inside it: true when they overlap.
  writes_into_registry = [for w in local.writes : "s3://${w.bucket}/${w.prefix}" if w.bucket == local.registry[0] &&
  (startswith("${w.prefix}/", "${local.registry[1]}/") || startswith("${local.registry[1]}/", "${w.prefix}/"))]

  # Cassandra: with Keyspaces and no hosts, the region's endpoint. Optional objects as objects
  # of nulls, so the expressions below need no null checks.
  cassandra_hosts = var.cassandra_keyspaces && length(var.cassandra_hosts) == 0 ? ["cassandra.${local.region}.amazonaws.com"] : var.cassandra_hosts
  login           = var.cassandra_login != null ? var.cassandra_login : { username = null, password_ssm_parameter = null, password_secret_arn = null }
  cassandra_tls   = var.cassandra_tls != null ? var.cassandra_tls : { enabled = false, ca_pem = null, ca_location = null, server_name = null }
  admin_tls       = var.admin_tls != null ? var.admin_tls : { cert_ssm_parameter = null, key_ssm_parameter = null, secret_arn = null }
  # Where the instance keeps the Cassandra CA bundle, written or fetched by the user data.
  cassandra_ca_file = local.cassandra_tls.ca_pem != null || local.cassandra_tls.ca_location != null ? "/etc/liveagg/cassandra-ca.pem" : ""
  cassandra_ca      = local.cassandra_tls.ca_location != null ? regex("^s3://([^/]+)/(.+)$", local.cassandra_tls.ca_location) : []

  # What the workers read from SSM and Secrets Manager: exactly the configured names, by ARN.
  parameter_names = [for n in [var.admin_token_parameter, local.login.password_ssm_parameter, local.admin_tls.cert_ssm_parameter, local.admin_tls.key_ssm_parameter] : n if n != null]
  parameter_arns  = distinct([for n in local.parameter_names : "arn:aws:ssm:${local.region}:${data.aws_caller_identity.current.account_id}:parameter/${trimprefix(n, "/")}"])
  secret_arns     = distinct([for a in [local.login.password_secret_arn, local.admin_tls.secret_arn] : a if a != null])
  # kms:Decrypt only through the services that hold the workers' secrets.
  kms_via_services = concat(["ssm.${local.region}.amazonaws.com"], length(local.secret_arns) > 0 ? ["secretsmanager.${local.region}.amazonaws.com"] : [])

  # Keyspaces with SigV4 (no password configured): the role itself is the Cassandra login, so
  # it is granted its spec's keyspaces and tables, and the system keyspaces the driver reads.
  keyspaces_sigv4  = var.cassandra_keyspaces && local.login.password_ssm_parameter == null && local.login.password_secret_arn == null
  keyspaces_tables = local.keyspaces_sigv4 ? distinct([for t in var.cassandra_tables : { keyspace = lower(t.keyspace), table = lower(t.table) }]) : []
  keyspaces_prefix = "arn:aws:cassandra:${local.region}:${data.aws_caller_identity.current.account_id}:/keyspace/"

  worker_config = templatefile("${path.module}/worker.yaml.tftpl", {
    spec_location                    = var.spec_location
    kafka_brokers                    = var.kafka_brokers
    kafka_tls                        = var.kafka_tls
    kafka_sasl_mechanism             = local.kafka_sasl
    checkpoint_location              = var.checkpoint_location
    checkpoint_interval              = var.checkpoint_interval
    on_missing_offset                = var.on_missing_offset
    cassandra_hosts                  = local.cassandra_hosts
    cassandra_keyspaces              = var.cassandra_keyspaces
    cassandra_replication            = var.cassandra_replication != null ? var.cassandra_replication : {}
    cassandra_username               = local.login.username != null ? local.login.username : ""
    cassandra_password_ssm_parameter = local.login.password_ssm_parameter != null ? local.login.password_ssm_parameter : ""
    cassandra_password_secret        = local.login.password_secret_arn != null ? local.login.password_secret_arn : ""
    cassandra_tls                    = local.cassandra_tls.enabled
    cassandra_ca_file                = local.cassandra_ca_file
    cassandra_server_name            = local.cassandra_tls.server_name != null ? local.cassandra_tls.server_name : ""
    region                           = local.region
    admin_port                       = var.admin_port
    admin_token_parameter            = var.admin_token_parameter
    admin_cert_ssm_parameter         = local.admin_tls.cert_ssm_parameter != null ? local.admin_tls.cert_ssm_parameter : ""
    admin_key_ssm_parameter          = local.admin_tls.key_ssm_parameter != null ? local.admin_tls.key_ssm_parameter : ""
    admin_tls_secret                 = local.admin_tls.secret_arn != null ? local.admin_tls.secret_arn : ""
    metrics_port                     = var.metrics_port
    asg_name                         = var.name
  })
}

resource "aws_iam_role" "this" {
  name = "${var.name}-worker"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "ec2.amazonaws.com" } }]
  })
  tags = var.tags
}

# Exactly what the worker's code calls (a test derives the list from the code), plus reading
# its binary and, on MSK IAM, the cluster actions the Kafka protocol needs; each on what it is
# for only (another test checks the scoping): S3 writes under the fleet's own checkpoint and
# output prefixes, reads of the spec registry and the binary, tags on the worker's own
# instance, the one admin token parameter, metrics in the liveagg namespace.
resource "aws_iam_role_policy" "this" {
  name = "liveagg-worker"
  role = aws_iam_role.this.id
  policy = templatefile("${path.module}/policy.json.tftpl", {
    checkpoint_bucket_arn = "arn:aws:s3:::${local.checkpoint[0]}"
    checkpoint_prefix     = local.checkpoint_prefix
    spec_registry_arn     = "arn:aws:s3:::${local.registry[0]}/${local.registry[1]}/*"
    output_object_arns    = distinct([for w in local.output_writes : "arn:aws:s3:::${w.bucket}/${w.prefix}/*"])
    parameter_arns        = local.parameter_arns
    secret_arns           = local.secret_arns
    kms_key_arn           = var.secrets_kms_key_arn != null ? var.secrets_kms_key_arn : ""
    kms_via_services      = local.kms_via_services
    binary_object_arn     = "arn:aws:s3:::${local.binary[0]}/${local.binary[1]}"
    cassandra_ca_arn      = length(local.cassandra_ca) > 0 ? "arn:aws:s3:::${local.cassandra_ca[0]}/${local.cassandra_ca[1]}" : ""
    keyspaces_create_arns = distinct(concat([for t in local.keyspaces_tables : "${local.keyspaces_prefix}${t.keyspace}/"], [for t in local.keyspaces_tables : "${local.keyspaces_prefix}${t.keyspace}/table/${t.table}"]))
    keyspaces_table_arns  = [for t in local.keyspaces_tables : "${local.keyspaces_prefix}${t.keyspace}/table/${t.table}"]
    keyspaces_system_arn  = "${local.keyspaces_prefix}system*"
    msk_cluster_arn       = local.msk_cluster_arn
    msk_resource_prefix   = replace(local.msk_cluster_arn, ":cluster/", ":*/")
  })

  lifecycle {
    precondition {
      condition     = local.kafka_sasl != "aws-msk-iam" || var.msk_cluster_arn != null
      error_message = "kafka_sasl_mechanism is aws-msk-iam but msk_cluster_arn is null: the workers would have no kafka-cluster permissions. Set msk_cluster_arn, or set kafka_sasl_mechanism to \"\" for a Kafka without IAM authentication."
    }
    precondition {
      condition     = length(local.writes_into_registry) == 0
      error_message = "The workers would write where the specs are (${var.spec_registry}): ${join(", ", local.writes_into_registry)}. Move the checkpoints or the spec's s3 outputs out of the spec registry."
    }
    precondition {
      condition     = startswith(var.spec_location, "${trimsuffix(var.spec_registry, "/")}/")
      error_message = "spec_location ${var.spec_location} is outside spec_registry ${var.spec_registry}: the workers may read specs only from the registry."
    }
  }
}

resource "aws_iam_instance_profile" "this" {
  name = "${var.name}-worker"
  role = aws_iam_role.this.name
}

resource "aws_security_group" "this" {
  name        = "${var.name}-worker"
  description = "liveagg workers: admin API from the control lambdas, metrics from the VPC"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "admin" {
  security_group_id            = aws_security_group.this.id
  description                  = "admin API (checkpoint, drain) from the control lambdas"
  ip_protocol                  = "tcp"
  from_port                    = var.admin_port
  to_port                      = var.admin_port
  referenced_security_group_id = var.lambda_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "metrics" {
  security_group_id = aws_security_group.this.id
  description       = "Prometheus metrics from the VPC"
  ip_protocol       = "tcp"
  from_port         = var.metrics_port
  to_port           = var.metrics_port
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.this.id
  description       = "Kafka, Cassandra, S3, AWS APIs"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_launch_template" "this" {
  name_prefix            = "${var.name}-"
  image_id               = var.ami_id
  vpc_security_group_ids = [aws_security_group.this.id]
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.this.arn
  }

  # IMDSv2 only: the worker reads its identity and spot notices with session tokens.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  user_data = base64encode(templatefile("${path.module}/user_data.sh.tftpl", {
    binary_location       = var.binary_location
    region                = local.region
    worker_config         = local.worker_config
    gomemlimit            = "${var.memory_limit_mib}MiB"
    cassandra_ca_file     = local.cassandra_ca_file
    cassandra_ca_pem      = local.cassandra_tls.ca_pem != null ? local.cassandra_tls.ca_pem : ""
    cassandra_ca_location = local.cassandra_tls.ca_location != null ? local.cassandra_tls.ca_location : ""
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = local.tags
  }
  tags = var.tags
}

resource "aws_autoscaling_group" "this" {
  name                = var.name
  min_size            = var.min_size
  max_size            = var.max_size
  vpc_zone_identifier = var.subnet_ids
  # Spot capacity moves: launch a replacement as soon as AWS recommends rebalancing, and drain
  # the old instance through the terminate hook.
  capacity_rebalance        = true
  health_check_type         = "EC2"
  default_instance_warmup   = 240
  wait_for_capacity_timeout = "0"

  mixed_instances_policy {
    instances_distribution {
      on_demand_base_capacity                  = 0
      on_demand_percentage_above_base_capacity = 0
      spot_allocation_strategy                 = "price-capacity-optimized"
    }
    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.this.id
        version            = "$Latest"
      }
      dynamic "override" {
        for_each = var.instance_types
        content {
          instance_type = override.value
        }
      }
    }
  }

  initial_lifecycle_hook {
    name                 = "drain"
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    heartbeat_timeout    = 120
    default_result       = "CONTINUE"
  }

  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # The autoscaler lambda owns the desired capacity.
  lifecycle {
    ignore_changes = [desired_capacity]
  }

  # The launch template names only the instance profile: without this, the first instances can
  # boot before their role's policy is attached, and their user data fails to fetch the binary.
  depends_on = [aws_iam_role_policy.this]
}
