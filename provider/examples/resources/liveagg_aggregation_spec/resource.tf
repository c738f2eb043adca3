resource "liveagg_aggregation_spec" "zone" {
  name             = "indoor-l2-zone"
  key              = ["org", "site", "floor", "zone"]
  windows          = ["1m", "15m", "1h"]
  allowed_lateness = "5m"

  input {
    topic  = "location-partials"
    format = "partials"
  }
  aggregation {
    fn = "count"
  }
  aggregation {
    fn    = "distinct"
    field = "device"
  }
  aggregation {
    fn        = "quantiles"
    field     = "rssi"
    quantiles = [0.5, 0.9, 0.99]
  }
  output {
    type     = "cassandra"
    keyspace = "indoor"
    table    = "rollup_zone"
  }
}
