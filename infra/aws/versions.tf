terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.21.0"
    }
    liveagg = {
      source  = "liveagg/liveagg"
      version = "0.1.0"
    }
  }

  # Fill in where this environment keeps its state, for example:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "liveagg/indoor-location.tfstate"
  #   region       = "us-east-1"
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = { "liveagg:stack" = var.name, environment = var.environment }
  }
}

# Kafka, the spec registry and Cassandra, as the workers see them. The provider connects to all
# three during plan and apply, so run tofu or terraform from a machine that reaches them (see
# README.md). The spec registry is the bucket this root creates, named from the variable so it
# is known at plan time; the stack module stores the specs only after the bucket is ready, so
# one apply creates both.
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
  # The password is never in the configuration: export LIVEAGG_CASSANDRA_PASSWORD (README.md).
  cassandra {
    hosts       = var.cassandra_hosts
    keyspaces   = var.cassandra_keyspaces
    tls         = var.cassandra_tls
    ca_file     = var.cassandra_ca_file
    server_name = var.cassandra_server_name
    username    = var.cassandra_username
  }
}
