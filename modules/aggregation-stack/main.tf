module "store" {
  source        = "../checkpoint-store"
  name          = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

module "pipeline" {
  source = "../pipeline"
  topics = var.topics
  specs  = var.specs
  # The store's output is known once the bucket is ready: the specs are stored after it, and a
  # liveagg provider configured with another registry fails the plan.
  spec_registry = module.store.spec_registry
  # The rollup tables' keyspaces get the replication the workers would create them with.
  cassandra_replication = local.cassandra_replication
  fleet = { for k, f in var.fleets : k => {
    peak_records_per_second = f.peak_records_per_second
    live_series             = f.live_series
    cores_per_worker        = f.cores_per_worker
  } }
}

locals {
  inputs = { for k, doc in var.specs : k => yamldecode(doc).input.topic }
  # Known at plan time from the documents themselves: the spec's name, the first folder of its
  # checkpoint and S3 output keys, and its s3 outputs' locations, the only places besides its
  # checkpoints its workers may write.
  spec_names = { for k, doc in var.specs : k => yamldecode(doc).name }
  s3_outputs = { for k, doc in var.specs : k => [for o in try(yamldecode(doc).outputs, []) : o.url if o.type == "s3"] }
  # And its Cassandra outputs' keyspaces and tables, the only ones its role may use on Keyspaces.
  cassandra_tables = { for k, doc in var.specs : k => [for o in try(yamldecode(doc).outputs, []) : { keyspace = o.keyspace, table = o.table } if o.type == "cassandra"] }
  # Keyspaces accepts SingleRegionStrategy only.
  cassandra_replication = var.cassandra.keyspaces ? tomap({ class = "SingleRegionStrategy" }) : var.cassandra.replication

  # A worker has up to one poll of records fetched and not yet applied (workers/worker's
  # MaxPollRecords default; a test keeps the two equal): that much lag per worker is no backlog.
  poll_records_per_worker = 10000

  # Lag alarm threshold per fleet: lag_alarm_seconds of the fleet's planned peak input, at least
  # one poll per worker at the plan's max_workers (which the input's partitions cap), unless the
  # fleet sets lag_alarm_records itself.
  lag_alarm_records = { for k, f in var.fleets : k => f.lag_alarm_records != null ? f.lag_alarm_records : max(
    ceil(f.peak_records_per_second * var.lag_alarm_seconds),
    module.pipeline.fleet_plans[k].max_workers * local.poll_records_per_worker,
  ) }

  # Dead-letter alarm threshold per fleet, in records per minute: dead_letter_alarm_fraction of
  # the fleet's planned peak input, at least 10, unless the fleet sets its own.
  dead_letters_alarm_per_minute = { for k, f in var.fleets : k => f.dead_letters_alarm_per_minute != null ? f.dead_letters_alarm_per_minute : max(
    ceil(f.peak_records_per_second * 60 * var.dead_letter_alarm_fraction), 10,
  ) }
}

module "workers" {
  source   = "../spot-workers"
  for_each = var.fleets

  name                     = "${var.name}-${each.key}"
  stack                    = var.name
  vpc_id                   = var.network.vpc_id
  vpc_cidr                 = var.network.vpc_cidr
  subnet_ids               = var.network.subnet_ids
  lambda_security_group_id = module.control.security_group_id
  ami_id                   = var.ami_id
  instance_types           = each.value.instance_types
  min_size                 = module.pipeline.fleet_plans[each.key].min_workers
  max_size                 = module.pipeline.fleet_plans[each.key].max_workers
  memory_limit_mib         = module.pipeline.fleet_plans[each.key].instance_memory_mib
  binary_location          = var.binary_location
  spec_name                = local.spec_names[each.key]
  spec_location            = module.pipeline.spec_locations[each.key]
  spec_registry            = module.store.spec_registry
  checkpoint_location      = module.store.checkpoint_location
  s3_output_locations      = local.s3_outputs[each.key]
  kafka_brokers            = var.kafka.brokers
  kafka_tls                = var.kafka.tls
  kafka_sasl_mechanism     = var.kafka.sasl_mechanism
  msk_cluster_arn          = var.kafka.msk_cluster_arn
  cassandra_hosts          = var.cassandra_hosts
  cassandra_keyspaces      = var.cassandra.keyspaces
  cassandra_tables         = local.cassandra_tables[each.key]
  cassandra_login          = each.value.cassandra_login != null ? each.value.cassandra_login : var.cassandra.login
  cassandra_tls            = var.cassandra.tls
  cassandra_replication    = local.cassandra_replication
  admin_token_parameter    = var.admin_token_parameter
  admin_tls = var.admin_tls == null ? null : {
    cert_ssm_parameter = var.admin_tls.cert_ssm_parameter
    key_ssm_parameter  = var.admin_tls.key_ssm_parameter
    secret_arn         = var.admin_tls.secret_arn
  }
  secrets_kms_key_arn = var.secrets_kms_key_arn
  tags                = var.tags
}

# One control module for the stack: one spot function that serves every fleet's group (a spot
# warning names only the instance, so per-fleet functions would each see every warning), and
# an autoscaler per fleet.
module "control" {
  source = "../control-lambdas"

  name  = var.name
  stack = var.name
  fleets = { for k, f in var.fleets : k => {
    asg_name   = "${var.name}-${k}"
    spec_name  = local.spec_names[k]
    partitions = module.pipeline.topics[local.inputs[k]]
    autoscaler = { cores_per_worker = f.cores_per_worker }
  } }
  dist_dir              = var.lambda_dist_dir
  vpc_id                = var.network.vpc_id
  subnet_ids            = var.network.subnet_ids
  admin_token_parameter = var.admin_token_parameter
  admin_tls = var.admin_tls == null ? null : {
    ca_layer_arn = var.admin_tls.ca_layer_arn
    ca_path      = var.admin_tls.ca_path
    server_name  = var.admin_tls.server_name
  }
  secrets_kms_key_arn = var.secrets_kms_key_arn
  tags                = var.tags
}

module "monitoring" {
  source   = "../monitoring"
  for_each = var.fleets

  name                          = "${var.name}-${each.key}"
  spec_name                     = module.pipeline.spec_names[each.key]
  asg_name                      = "${var.name}-${each.key}"
  lag_alarm_records             = local.lag_alarm_records[each.key]
  dead_letters_alarm_per_minute = local.dead_letters_alarm_per_minute[each.key]
  alarm_actions                 = var.alarm_actions
  tags                          = var.tags
}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {
  lifecycle {
    # Checked here, at plan time, because Terraform before 1.9 cannot compare two variables in
    # a validation block.
    precondition {
      condition     = length(setsubtract(keys(var.specs), keys(var.fleets))) == 0
      error_message = "Every spec needs a fleet to run it; no fleet runs: ${join(", ", setsubtract(keys(var.specs), keys(var.fleets)))}. Add a fleets entry for each, or remove the spec."
    }
    precondition {
      condition     = length(setsubtract(keys(var.fleets), keys(var.specs))) == 0
      error_message = "Fleets without a spec: ${join(", ", setsubtract(keys(var.fleets), keys(var.specs)))}. A fleet's key is the key of the spec it runs."
    }
  }
}
