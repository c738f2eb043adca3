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
