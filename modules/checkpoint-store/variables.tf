variable "name" {
  description = "Bucket name (globally unique): holds checkpoints under checkpoints/ and specs under specs/."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for server-side encryption; null uses S3-managed keys (SSE-S3)."
  type        = string
  default     = null
}

variable "noncurrent_days" {
  description = "Days an overwritten or deleted object version is kept before it expires. Checkpoint data objects are replaced every few minutes; the manifests keep the current and previous generation, so older versions are only history."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_days >= 1
    error_message = "noncurrent_days must be at least 1: a restore may fall back to the previous generation."
  }
}

variable "force_destroy" {
  description = "Allow destroying the bucket with objects in it (test stacks only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the bucket."
  type        = map(string)
  default     = {}
}
