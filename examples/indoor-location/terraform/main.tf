# The indoor-location pipeline as a stack, the way an outside user calls the module: every
# value a real deployment differs in is a variable (see variables.tf and infra/aws for a
# complete environment root with pinned versions and a walkthrough).
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
    liveagg = {
      source  = "liveagg/liveagg"
      version = ">= 0.1"
    }
  }
}

module "indoor" {
  source = "../../../modules/aggregation-stack"

  name        = "indoor"
  bucket_name = var.bucket_name
  network     = var.network
  kafka       = { brokers = var.kafka_brokers, msk_cluster_arn = var.msk_cluster_arn }

  cassandra_hosts = var.cassandra_hosts
  topics = {
    "location-raw"          = { partitions = 12 }
    "location-partials"     = { partitions = 12 }
    "location-partials-org" = { partitions = 2 }
  }
  specs = {
    l1   = file("${path.module}/../level1.yaml")
    zone = file("${path.module}/../level2-zone.yaml")
    site = file("${path.module}/../level2-site.yaml")
    org  = file("${path.module}/../level3-org.yaml")
  }
  fleets = {
    l1   = { peak_records_per_second = 200000, live_series = 500000 }
    zone = { peak_records_per_second = 10000, live_series = 50000 }
    site = { peak_records_per_second = 10000, live_series = 5000 }
    org  = { peak_records_per_second = 1000, live_series = 500 }
  }

  ami_id                = var.ami_id
  binary_location       = var.binary_location
  lambda_dist_dir       = "${path.module}/../../../lambdas/dist"
  admin_token_parameter = var.admin_token_parameter
  lag_alarm_records     = 12000000
}

output "indoor" {
  description = "Bucket, spec locations and fleets of the stack."
  value       = module.indoor
}
