module "stack" {
  source = "../../modules/aggregation-stack"

  name          = var.name
  bucket_name   = var.bucket_name
  force_destroy = var.force_destroy
  network = {
    vpc_id     = var.vpc_id
    vpc_cidr   = var.vpc_cidr
    subnet_ids = var.private_subnet_ids
  }
  kafka = {
    brokers         = var.kafka_brokers
    msk_cluster_arn = var.msk_cluster_arn
  }
  cassandra_hosts = var.cassandra_hosts
  # Secrets are named, never given: the workers read them at start (see README.md).
  cassandra = {
    keyspaces = var.cassandra_keyspaces
    login = var.cassandra_password_ssm_parameter == null && var.cassandra_password_secret_arn == null ? null : {
      username               = var.cassandra_username
      password_ssm_parameter = var.cassandra_password_ssm_parameter
      password_secret_arn    = var.cassandra_password_secret_arn
    }
    tls = !var.cassandra_tls ? null : {
      enabled     = true
      ca_pem      = var.cassandra_ca_file == null ? null : file(var.cassandra_ca_file)
      server_name = var.cassandra_server_name
    }
  }
  admin_tls = var.admin_tls == null ? null : {
    cert_ssm_parameter = var.admin_tls.cert_ssm_parameter
    key_ssm_parameter  = var.admin_tls.key_ssm_parameter
    secret_arn         = var.admin_tls.secret_arn
    server_name        = var.admin_tls.server_name
    ca_layer_arn       = var.admin_tls.ca_layer_arn
    ca_path            = var.admin_tls.ca_path == null ? "/opt/liveagg/admin-ca.pem" : var.admin_tls.ca_path
  }
  secrets_kms_key_arn = var.secrets_kms_key_arn

  topics = {
    "location-raw"          = { partitions = 48, replication_factor = 3, config = { "retention.ms" = "604800000" } }
    "location-partials"     = { partitions = 24, replication_factor = 3 }
    "location-partials-org" = { partitions = 6, replication_factor = 3 }
  }
  specs = {
    l1    = file("${path.module}/../../examples/indoor-location/level1.yaml")
    zone  = file("${path.module}/../../examples/indoor-location/level2-zone.yaml")
    floor = file("${path.module}/../../examples/indoor-location/level2-floor.yaml")
    site  = file("${path.module}/../../examples/indoor-location/level2-site.yaml")
    org   = file("${path.module}/../../examples/indoor-location/level3-org.yaml")
  }
  # One fleet per spec (the module refuses a spec no fleet runs). Each fleet's lag alarm fires
  # at lag_alarm_seconds of its own peak input (see modules/aggregation-stack).
  fleets = {
    l1    = { peak_records_per_second = 1500000, live_series = 3000000 }
    zone  = { peak_records_per_second = 60000, live_series = 400000 }
    floor = { peak_records_per_second = 60000, live_series = 120000 }
    site  = { peak_records_per_second = 60000, live_series = 40000 }
    org   = { peak_records_per_second = 5000, live_series = 2000 }
  }

  ami_id                = var.ami_id
  binary_location       = var.binary_location
  lambda_dist_dir       = "${path.module}/../../lambdas/dist"
  admin_token_parameter = var.admin_token_parameter
  lag_alarm_seconds     = var.lag_alarm_seconds
  alarm_actions         = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
}
