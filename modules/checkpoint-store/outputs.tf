output "bucket" {
  description = "Bucket name."
  value       = aws_s3_bucket.this.id
}

output "arn" {
  description = "Bucket ARN, for IAM policies."
  value       = aws_s3_bucket.this.arn
}

# The locations are known only once the bucket exists and is set up: whatever writes there
# (the liveagg provider's specs, the workers' checkpoints) and takes them from these outputs is
# applied after the bucket's versioning, encryption, lifecycle and TLS-only policy.
output "checkpoint_location" {
  description = "The workers' checkpoint.location, known once the bucket is ready for writes."
  value       = "s3://${aws_s3_bucket.this.id}/checkpoints"
  depends_on  = [aws_s3_bucket_versioning.this, aws_s3_bucket_server_side_encryption_configuration.this, aws_s3_bucket_public_access_block.this, aws_s3_bucket_lifecycle_configuration.this, aws_s3_bucket_policy.this]
}

output "spec_registry" {
  description = "The liveagg provider's spec_registry.location and the prefix of the workers' spec locations, known once the bucket is ready for writes (pass it to modules/pipeline's spec_registry)."
  value       = "s3://${aws_s3_bucket.this.id}/specs"
  depends_on  = [aws_s3_bucket_versioning.this, aws_s3_bucket_server_side_encryption_configuration.this, aws_s3_bucket_public_access_block.this, aws_s3_bucket_lifecycle_configuration.this, aws_s3_bucket_policy.this]
}
