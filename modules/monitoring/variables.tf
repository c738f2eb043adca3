variable "name" {
  description = "Name of the dashboard and prefix of the alarms."
  type        = string
}

variable "spec_name" {
  description = "Spec the fleet runs: the Spec dimension of the workers' metrics."
  type        = string
}

variable "asg_name" {
  description = "The workers' Auto Scaling group: the AutoScalingGroup dimension."
  type        = string
}

variable "lag_alarm_records" {
  description = "Consumer lag, in records, above which the lag alarm fires: the ingest rate times the lag SLO in seconds is a good start."
  type        = number
}

variable "checkpoint_age_alarm_seconds" {
  description = "Age of the oldest partition's checkpoint above which the alarm fires: a few checkpoint intervals."
  type        = number
  default     = 300
}

variable "sink_errors_alarm_per_minute" {
  description = "Sink errors per minute (retries included) above which the alarm fires."
  type        = number
  default     = 10
}

variable "dead_letters_alarm_per_minute" {
  description = "Dead-lettered records per minute, summed over the fleet, above which the dead-letter alarm fires when it holds for 5 minutes. Late records are dead-lettered too and the metric does not tell them apart: set it above the fleet's normal rate at its busiest (read DeadLettered on the dashboard over a week), for example twice that; aggregation-stack derives it from the fleet's planned peak input."
  type        = number
  default     = 100

  validation {
    condition     = var.dead_letters_alarm_per_minute >= 0
    error_message = "dead_letters_alarm_per_minute is a number of records, 0 or more."
  }
}

variable "alarm_actions" {
  description = "ARNs (SNS topics) notified when an alarm fires or clears."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for the alarms."
  type        = map(string)
  default     = {}
}
