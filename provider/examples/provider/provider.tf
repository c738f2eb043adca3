provider "liveagg" {
  kafka {
    bootstrap_servers = ["b-1.example.kafka.us-east-1.amazonaws.com:9098"]
    tls               = true
    sasl_mechanism    = "aws-msk-iam"
    aws_region        = "us-east-1"
  }
  spec_registry {
    location = "s3://example-liveagg/specs"
    region   = "us-east-1"
  }
  cassandra {
    hosts = ["cassandra-1.example.internal:9042"]
  }
}
