tofu import liveagg_kafka_topic.raw location-raw
