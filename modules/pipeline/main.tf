locals {
  specs = { for k, doc in var.specs : k => yamldecode(doc) }

  # One rollup table per Cassandra output of any spec.
  rollups = merge([
    for k, s in local.specs : {
      for o in try(s.outputs, []) : "${o.keyspace}.${o.table}" => {
        spec     = k
        keyspace = o.keyspace
        table    = o.table
        ttl      = try(o.ttl, null)
      } if o.type == "cassandra"
    }
  ]...)
}

resource "liveagg_kafka_topic" "this" {
  for_each = var.topics

  name               = each.key
  partitions         = each.value.partitions
  replication_factor = each.value.replication_factor
  config             = each.value.config
}

resource "liveagg_aggregation_spec" "this" {
  for_each = local.specs

  name             = each.value.name
  key              = each.value.key
  windows          = each.value.windows
  allowed_lateness = try(each.value.allowed_lateness, null)

  input {
    topic            = each.value.input.topic
    format           = try(each.value.input.format, null)
    time_field       = try(each.value.input.time_field, null)
    time_unit        = try(each.value.input.time_unit, null)
    max_future_skew  = try(each.value.input.max_future_skew, null)
    max_record_bytes = try(each.value.input.max_record_bytes, null)
  }

  dynamic "aggregation" {
    for_each = each.value.aggregations
    content {
      name              = try(aggregation.value.name, null)
      fn                = aggregation.value.fn
      field             = try(aggregation.value.field, null)
      precision         = try(aggregation.value.precision, null)
      relative_accuracy = try(aggregation.value.relative_accuracy, null)
      quantiles         = try(aggregation.value.quantiles, null)
    }
  }

  dynamic "output" {
    for_each = each.value.outputs
    content {
      type     = output.value.type
      partial  = try(output.value.partial, null)
      key      = try(output.value.key, null)
      keyspace = try(output.value.keyspace, null)
      table    = try(output.value.table, null)
      ttl      = try(output.value.ttl, null)
      url      = try(output.value.url, null)
      topic    = try(output.value.topic, null)
      path     = try(output.value.path, null)
    }
  }

  # A spec's topics exist before workers can load it, and its bucket before it is stored: the
  # provider's PutObject fails on a bucket not made yet. var.spec_registry carries the
  # dependency on whatever makes the bucket (see its description).
  depends_on = [liveagg_kafka_topic.this, var.spec_registry]

  lifecycle {
    # Workers are allowed to read specs from the registry bucket only: a provider configured
    # with another registry would store specs no worker can load.
    postcondition {
      condition     = var.spec_registry == null || startswith(self.location, "${trimsuffix(var.spec_registry, "/")}/")
      error_message = "The liveagg provider stores this spec at ${self.location}, outside spec_registry ${var.spec_registry == null ? "" : var.spec_registry}: set the provider's spec_registry.location (or LIVEAGG_SPEC_REGISTRY) to it."
    }
  }
}

resource "liveagg_rollup_table" "this" {
  for_each = local.rollups

  spec        = liveagg_aggregation_spec.this[each.value.spec].yaml
  keyspace    = each.value.keyspace
  table       = each.value.table
  ttl         = each.value.ttl
  replication = var.cassandra_replication
}

data "liveagg_fleet_plan" "this" {
  for_each = var.fleet

  spec                    = liveagg_aggregation_spec.this[each.key].yaml
  peak_records_per_second = each.value.peak_records_per_second
  live_series             = each.value.live_series
  cores_per_worker        = each.value.cores_per_worker
  partitions              = try(liveagg_kafka_topic.this[local.specs[each.key].input.topic].partitions, null)
}
