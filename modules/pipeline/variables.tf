variable "topics" {
  description = "Kafka topics of the pipeline, by name: the raw input and the intermediate topics its levels write partials to. Partitions may grow later, never shrink."
  type = map(object({
    partitions         = number
    replication_factor = optional(number)
    config             = optional(map(string))
  }))
  default = {}
}

variable "specs" {
  description = "The pipeline's aggregation specs, one YAML document per level, by a key of your choice (for example file(\"level1.yaml\")). Each is checked at plan time and stored in the provider's spec registry."
  type        = map(string)
}

variable "cassandra_replication" {
  description = "Replication of the keyspaces of the specs' Cassandra outputs, for example { class = \"NetworkTopologyStrategy\", us-east-1 = \"3\" }; null for one replica with SimpleStrategy."
  type        = map(string)
  default     = null
}

variable "spec_registry" {
  description = "s3://bucket/prefix the liveagg provider stores specs under, taken from the module or resource that makes the bucket (modules/checkpoint-store's spec_registry output): the specs then wait for that bucket on a first apply, and a provider configured with another registry fails the plan. null when the bucket exists already."
  type        = string
  default     = null

  validation {
    condition     = var.spec_registry == null || can(regex("^s3://[^/]+", var.spec_registry))
    error_message = "spec_registry is an s3://bucket/prefix location, or null."
  }
}

variable "fleet" {
  description = "Peak load per spec key, for a fleet plan: records per second and live series at the busiest time, and the instance's vCPUs."
  type = map(object({
    peak_records_per_second = number
    live_series             = number
    cores_per_worker        = optional(number, 2)
  }))
  default = {}
}
