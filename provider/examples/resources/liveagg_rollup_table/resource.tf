resource "liveagg_rollup_table" "zone" {
  spec     = liveagg_aggregation_spec.zone.yaml
  keyspace = "indoor"
  table    = "rollup_zone"
  ttl      = "2160h" # 90 days
  replication = {
    class     = "NetworkTopologyStrategy"
    us-east-1 = "3"
  }
}
