data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region              = data.aws_region.current.region
  account             = data.aws_caller_identity.current.account_id
  token_parameter_arn = "arn:aws:ssm:${local.region}:${local.account}:parameter/${trimprefix(var.admin_token_parameter, "/")}"
  zip_arch            = var.architecture == "arm64" ? "arm64" : "amd64"
  functions = {
    spotinterrupt = {
      timeout = 120 # the spot notice's two minutes
      memory  = 256
      # The function drains only instances of this stack's group, at the workers' admin port.
      env = {
        LIVEAGG_ADMIN_TOKEN_PARAMETER = var.admin_token_parameter
        LIVEAGG_STACK                 = var.stack
        LIVEAGG_ASG                   = var.asg_name
        LIVEAGG_ADMIN_PORT            = tostring(var.admin_port)
      }
      policy_vars = { stack = var.stack, asg_arn = var.asg_arn, token_parameter_arn = local.token_parameter_arn }
    }
    autoscaler = {
      timeout = 60
      memory  = 256
      env = merge({
        LIVEAGG_ASG               = var.asg_name
        LIVEAGG_SPEC              = var.spec_name
        LIVEAGG_PARTITIONS        = tostring(var.partitions)
        LIVEAGG_POLICY            = var.autoscaler.policy
        LIVEAGG_CORES_PER_WORKER  = tostring(var.autoscaler.cores_per_worker)
        LIVEAGG_MEMORY_PER_WORKER = var.autoscaler.memory_per_worker
        LIVEAGG_DRY_RUN           = tostring(var.autoscaler.dry_run)
        LIVEAGG_LEAD              = var.autoscaler.lead
        }, var.autoscaler.target_utilization == null ? {} : {
        LIVEAGG_TARGET_UTILIZATION = tostring(var.autoscaler.target_utilization)
      })
      policy_vars = { asg_arn = var.asg_arn }
    }
  }
}

resource "aws_security_group" "lambda" {
  name        = "${var.name}-spot-lambda"
  description = "liveagg spot lambda: reaches the workers' admin API"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "lambda" {
  security_group_id = aws_security_group.lambda.id
  description       = "worker admin API, and AWS APIs"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_sqs_queue" "dlq" {
  for_each                  = local.functions
  name                      = "${var.name}-${each.key}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_cloudwatch_log_group" "this" {
  for_each          = local.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_iam_role" "this" {
  for_each = local.functions
  name     = "${var.name}-${each.key}"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "lambda.amazonaws.com" } }]
  })
  tags = var.tags
}

# Exactly the actions each function's code calls (a test derives them from the Go code), plus
# what the Lambda runtime needs: logs, VPC networking, the dead-letter queue.
resource "aws_iam_role_policy" "this" {
  for_each = local.functions
  name     = each.key
  role     = aws_iam_role.this[each.key].id
  policy = templatefile("${path.module}/policies/${each.key}.json.tftpl", merge(each.value.policy_vars, {
    log_group_arn = aws_cloudwatch_log_group.this[each.key].arn
    dlq_arn       = aws_sqs_queue.dlq[each.key].arn
  }))
}

resource "aws_lambda_function" "this" {
  for_each         = local.functions
  function_name    = "${var.name}-${each.key}"
  role             = aws_iam_role.this[each.key].arn
  filename         = "${var.dist_dir}/${each.key}-${local.zip_arch}.zip"
  source_code_hash = filebase64sha256("${var.dist_dir}/${each.key}-${local.zip_arch}.zip")
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]
  timeout          = each.value.timeout
  memory_size      = each.value.memory

  environment {
    variables = each.value.env
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dlq[each.key].arn
  }

  dynamic "vpc_config" {
    for_each = each.key == "spotinterrupt" ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = [aws_security_group.lambda.id]
    }
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy.this]
}

resource "aws_cloudwatch_event_rule" "spot" {
  name          = "${var.name}-spot-events"
  description   = "Spot interruption warnings and rebalance recommendations (the function filters instances by the liveagg:stack tag)"
  event_pattern = templatefile("${path.module}/patterns/spot.json.tftpl", {})
  tags          = var.tags
}

resource "aws_cloudwatch_event_rule" "lifecycle" {
  name          = "${var.name}-terminate-lifecycle"
  description   = "Terminate lifecycle actions of the workers' group"
  event_pattern = templatefile("${path.module}/patterns/lifecycle.json.tftpl", { asg_name = var.asg_name })
  tags          = var.tags
}

resource "aws_cloudwatch_event_rule" "schedule" {
  name                = "${var.name}-autoscaler"
  description         = "Runs the autoscaler every minute"
  schedule_expression = "rate(1 minute)"
  tags                = var.tags
}

locals {
  targets = {
    spot      = { rule = aws_cloudwatch_event_rule.spot.name, fn = "spotinterrupt" }
    lifecycle = { rule = aws_cloudwatch_event_rule.lifecycle.name, fn = "spotinterrupt" }
    schedule  = { rule = aws_cloudwatch_event_rule.schedule.name, fn = "autoscaler" }
  }
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = local.targets
  rule     = each.value.rule
  arn      = aws_lambda_function.this[each.value.fn].arn

  retry_policy {
    maximum_event_age_in_seconds = 120
    maximum_retry_attempts       = 2
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq[each.value.fn].arn
  }
}

resource "aws_lambda_permission" "this" {
  for_each      = local.targets
  statement_id  = "events-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.value.fn].function_name
  principal     = "events.amazonaws.com"
  source_arn    = "arn:aws:events:${local.region}:${local.account}:rule/${each.value.rule}"
}
