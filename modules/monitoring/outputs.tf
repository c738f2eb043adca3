output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "alarm_arns" {
  description = "Alarm ARNs by name: lag, checkpoint-age, sink-errors, dead-letters."
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => a.arn }
}
