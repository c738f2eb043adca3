resource "liveagg_kafka_topic" "raw" {
  name       = "location-raw"
  partitions = 12
  config = {
    "retention.ms" = "604800000" # a week: longer than any outage the fleet should replay
  }
}
