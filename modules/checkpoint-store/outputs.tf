output "bucket" {
  description = "Bucket name."
  value       = aws_s3_bucket.this.id
}

output "arn" {
  description = "Bucket ARN, for IAM policies."
  value       = aws_s3_bucket.this.arn
}

output "checkpoint_location" {
  description = "The workers' checkpoint.location."
  value       = "s3://${aws_s3_bucket.this.id}/checkpoints"
}

output "spec_registry" {
  description = "The liveagg provider's spec_registry.location and the prefix of the workers' spec locations."
  value       = "s3://${aws_s3_bucket.this.id}/specs"
}
