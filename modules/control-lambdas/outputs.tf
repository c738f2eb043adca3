output "security_group_id" {
  description = "The spot lambda's security group: the workers allow it on their admin port."
  value       = aws_security_group.lambda.id
}

output "function_arns" {
  description = "The functions' ARNs, by key: spotinterrupt (the stack's), autoscaler-<fleet> (one per fleet)."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "dead_letter_queues" {
  description = "Dead-letter queue URLs by function: events a function could not handle."
  value       = { for k, q in aws_sqs_queue.dlq : k => q.url }
}
