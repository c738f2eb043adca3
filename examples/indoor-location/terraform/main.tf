# The indoor-location pipeline as a stack, the way an outside user calls the module: every
# value a real deployment differs in is a variable (see variables.tf, terraform.tfvars.example,
# and infra/aws for a complete environment root with pinned versions and a walkthrough).
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0"
    }
    liveagg = {
      source  = "liveagg/liveagg"
      version = ">= 0.1"
    }
  }
}

provider "aws" {
  region = var.region
}

# The liveagg provider talks to Kafka, S3 and Cassandra during plan and apply: run them from a
# machine inside the VPC (see infra/aws/README.md). The spec registry is the stack's own bucket,
# named from the variable so that it is known at plan time; the module stores specs only after
# the bucket is ready.
provider "liveagg" {
  kafka {
    bootstrap_servers = var.kafka_brokers
    tls               = true
    sasl_mechanism    = "aws-msk-iam"
    aws_region        = var.region
  }
  spec_registry {
    location = "s3://${var.bucket_name}/specs"
    region   = var.region
  }
  # The password, if any, comes from LIVEAGG_CASSANDRA_PASSWORD; a private CA from
  # LIVEAGG_CASSANDRA_CA_FILE.
  cassandra {
    hosts       = var.cassandra_hosts
    keyspaces   = var.cassandra.keyspaces
    tls         = try(var.cassandra.tls.enabled, null)
    server_name = try(var.cassandra.tls.server_name, null)
    username    = try(var.cassandra.login.username, null)
  }
}

module "indoor" {
  source = "../../../modules/aggregation-stack"

  name          = "indoor"
  bucket_name   = var.bucket_name
  force_destroy = var.force_destroy
  network       = var.network
  kafka         = { brokers = var.kafka_brokers, msk_cluster_arn = var.msk_cluster_arn }

  cassandra_hosts = var.cassandra_hosts
  cassandra       = var.cassandra
  admin_tls       = var.admin_tls
  topics = {
    "location-raw"          = { partitions = 12 }
    "location-partials"     = { partitions = 12 }
    "location-partials-org" = { partitions = 2 }
  }
  specs = {
    l1    = file("${path.module}/../level1.yaml")
    zone  = file("${path.module}/../level2-zone.yaml")
    floor = file("${path.module}/../level2-floor.yaml")
    site  = file("${path.module}/../level2-site.yaml")
    org   = file("${path.module}/../level3-org.yaml")
  }
  # Every spec runs on its own fleet; each fleet's lag alarm is derived from its plan.
  fleets = {
    l1    = { peak_records_per_second = 200000, live_series = 500000 }
    zone  = { peak_records_per_second = 10000, live_series = 50000 }
    floor = { peak_records_per_second = 10000, live_series = 15000 }
    site  = { peak_records_per_second = 10000, live_series = 5000 }
    org   = { peak_records_per_second = 1000, live_series = 500 }
  }

  ami_id                = var.ami_id
  binary_location       = var.binary_location
  lambda_dist_dir       = "${path.module}/../../../lambdas/dist"
  admin_token_parameter = var.admin_token_parameter
  lag_alarm_seconds     = 60
}

output "indoor" {
  description = "Bucket, spec registry, spec locations and fleets of the stack."
  value       = module.indoor
}
