output "asg_name" {
  description = "Auto Scaling group name: the autoscaler's LIVEAGG_ASG and the spot rules' filter."
  value       = aws_autoscaling_group.this.name
}

output "asg_arn" {
  description = "Auto Scaling group ARN."
  value       = aws_autoscaling_group.this.arn
}

output "security_group_id" {
  description = "The workers' security group."
  value       = aws_security_group.this.id
}

output "role_arn" {
  description = "The workers' IAM role."
  value       = aws_iam_role.this.arn
}

output "worker_config" {
  description = "The worker configuration the instances run (no secrets: the admin token is read from SSM)."
  value       = local.worker_config
}
