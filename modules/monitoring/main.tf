data "aws_region" "current" {}

locals {
  dims = { Spec = var.spec_name, AutoScalingGroup = var.asg_name }

  # Metric names are the shared list's CloudWatch names (workers/metrics); a test checks every
  # one here and on the dashboard is emitted by the workers or the lambdas.
  alarms = {
    lag = {
      metric      = "ConsumerLag", stat = "Sum", threshold = var.lag_alarm_records, periods = 5
      description = "Consumer lag above the SLO for 5 minutes: the fleet is not keeping up (see the autoscaler's decisions)."
    }
    checkpoint-age = {
      metric      = "CheckpointAgeSeconds", stat = "Maximum", threshold = var.checkpoint_age_alarm_seconds, periods = 3
      description = "A partition has not checkpointed for too long: a crash now would replay more than planned."
    }
    sink-errors = {
      metric      = "SinkErrors", stat = "Sum", threshold = var.sink_errors_alarm_per_minute, periods = 3
      description = "A sink keeps failing: its writes are held and retried, consumption is paused behind it."
    }
    dead-letters = {
      metric      = "DeadLettered", stat = "Sum", threshold = var.dead_letters_alarm_per_minute, periods = 5
      description = "More than ${var.dead_letters_alarm_per_minute} records a minute dead-lettered for 5 minutes: bad or late input upstream, or a spec that does not fit it. The dead-letter topic has the records and each one's reason; the workers' logs name the reasons."
    }
  }
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = templatefile("${path.module}/dashboard.json.tftpl", {
    region = data.aws_region.current.region
    spec   = var.spec_name
    asg    = var.asg_name
    # The alarms' thresholds, drawn on their graphs.
    lag_alarm_records             = var.lag_alarm_records
    dead_letters_alarm_per_minute = var.dead_letters_alarm_per_minute
  })
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each            = local.alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = "liveagg"
  metric_name         = each.value.metric
  dimensions          = local.dims
  statistic           = each.value.stat
  period              = 60
  evaluation_periods  = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}
