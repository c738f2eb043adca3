data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region              = data.aws_region.current.region
  account             = data.aws_caller_identity.current.account_id
  token_parameter_arn = "arn:aws:ssm:${local.region}:${local.account}:parameter/${trimprefix(var.admin_token_parameter, "/")}"
  zip_arch            = var.architecture == "arm64" ? "arm64" : "amd64"
  # A group's ARN by its name (the middle field is a UUID Auto Scaling picks): the spot and
  # autoscaler functions act on these groups and no other.
  asg_arns = { for k, f in var.fleets : k => "arn:aws:autoscaling:${local.region}:${local.account}:autoScalingGroup:*:autoScalingGroupName/${f.asg_name}" }

  # One spot function for the stack: an EventBridge spot warning carries only the instance id,
  # so no rule can send a fleet's warnings to that fleet's function alone; one function that
  # knows every group of the stack handles each warning once. One autoscaler per fleet.
  functions = merge({
    spotinterrupt = {
      code    = "spotinterrupt"
      name    = "${var.name}-spotinterrupt"
      timeout = 120 # the spot notice's two minutes
      memory  = 256
      vpc     = true
      # The function drains only instances of this stack and of these groups, at the workers'
      # admin port.
      # With admin TLS, the CA bundle comes in a layer and the calls are HTTPS to the name on
      # the workers' certificate.
      env = merge({
        LIVEAGG_ADMIN_TOKEN_PARAMETER = var.admin_token_parameter
        LIVEAGG_STACK                 = var.stack
        LIVEAGG_ASG                   = join(",", [for k, f in var.fleets : f.asg_name])
        LIVEAGG_ADMIN_PORT            = tostring(var.admin_port)
        }, var.admin_tls == null ? {} : {
        LIVEAGG_ADMIN_CA          = var.admin_tls.ca_path
        LIVEAGG_ADMIN_SERVER_NAME = var.admin_tls.server_name
      })
      layers = var.admin_tls == null ? [] : [var.admin_tls.ca_layer_arn]
      policy = "spotinterrupt"
      policy_vars = { stack = var.stack, asg_arns = [for k, a in local.asg_arns : a], token_parameter_arn = local.token_parameter_arn,
      kms_key_arn = var.secrets_kms_key_arn != null ? var.secrets_kms_key_arn : "", region = local.region }
    }
    }, { for k, f in var.fleets : "autoscaler-${k}" => {
      code    = "autoscaler"
      name    = "${var.name}-${k}-autoscaler"
      timeout = 60
      memory  = 256
      vpc     = false
      layers  = []
      env = merge({
        LIVEAGG_ASG               = f.asg_name
        LIVEAGG_SPEC              = f.spec_name
        LIVEAGG_PARTITIONS        = tostring(f.partitions)
        LIVEAGG_POLICY            = f.autoscaler.policy
        LIVEAGG_CORES_PER_WORKER  = tostring(f.autoscaler.cores_per_worker)
        LIVEAGG_MEMORY_PER_WORKER = f.autoscaler.memory_per_worker
        LIVEAGG_DRY_RUN           = tostring(f.autoscaler.dry_run)
        LIVEAGG_LEAD              = f.autoscaler.lead
        }, f.autoscaler.target_utilization == null ? {} : {
        LIVEAGG_TARGET_UTILIZATION = tostring(f.autoscaler.target_utilization)
      })
      policy      = "autoscaler"
      policy_vars = { asg_arn = local.asg_arns[k] }
  } })
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
  name                      = "${each.value.name}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_cloudwatch_log_group" "this" {
  for_each          = local.functions
  name              = "/aws/lambda/${each.value.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_iam_role" "this" {
  for_each = local.functions
  name     = each.value.name
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "lambda.amazonaws.com" } }]
  })
  tags = var.tags
}

# Exactly the actions each function's code calls (a test derives them from the Go code), plus
# what the Lambda runtime needs: logs, VPC networking, the dead-letter queue; each on what it is
# for only (another test checks the scoping). The ARNs are built from names rather than taken
# from the resources, so the whole policy is known, and reviewable, at plan time. Two kinds of
# statement keep Resource "*": the Describe calls and cloudwatch:GetMetricData, which IAM does
# not scope by resource at all, and PutMetricData, which it scopes only by the
# cloudwatch:namespace condition the policies set; the Lambda service's ENI calls for the spot
# function's VPC access are on "*" as in AWS's own AWSLambdaVPCAccessExecutionRole.
resource "aws_iam_role_policy" "this" {
  for_each = local.functions
  name     = each.value.policy
  role     = aws_iam_role.this[each.key].id
  policy = templatefile("${path.module}/policies/${each.value.policy}.json.tftpl", merge(each.value.policy_vars, {
    log_group_arn = "arn:aws:logs:${local.region}:${local.account}:log-group:/aws/lambda/${each.value.name}"
    dlq_arn       = "arn:aws:sqs:${local.region}:${local.account}:${each.value.name}-dlq"
  }))
}

resource "aws_lambda_function" "this" {
  for_each         = local.functions
  function_name    = each.value.name
  role             = aws_iam_role.this[each.key].arn
  filename         = "${var.dist_dir}/${each.value.code}-${local.zip_arch}.zip"
  source_code_hash = filebase64sha256("${var.dist_dir}/${each.value.code}-${local.zip_arch}.zip")
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]
  timeout          = each.value.timeout
  memory_size      = each.value.memory
  layers           = each.value.layers

  environment {
    variables = each.value.env
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dlq[each.key].arn
  }

  dynamic "vpc_config" {
    for_each = each.value.vpc ? [1] : []
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
  description   = "Spot interruption warnings and rebalance recommendations of the account (they name only the instance: the function keeps its stack's and groups' own)"
  event_pattern = templatefile("${path.module}/patterns/spot.json.tftpl", {})
  tags          = var.tags
}

resource "aws_cloudwatch_event_rule" "lifecycle" {
  name          = "${var.name}-terminate-lifecycle"
  description   = "Terminate lifecycle actions of the stack's worker groups"
  event_pattern = templatefile("${path.module}/patterns/lifecycle.json.tftpl", { asg_names = [for k, f in var.fleets : f.asg_name] })
  tags          = var.tags
}

resource "aws_cloudwatch_event_rule" "schedule" {
  for_each            = var.fleets
  name                = "${var.name}-${each.key}-autoscaler"
  description         = "Runs the autoscaler of fleet ${each.key} every minute"
  schedule_expression = "rate(1 minute)"
  tags                = var.tags
}

locals {
  targets = merge({
    spot      = { rule = aws_cloudwatch_event_rule.spot.name, fn = "spotinterrupt" }
    lifecycle = { rule = aws_cloudwatch_event_rule.lifecycle.name, fn = "spotinterrupt" }
  }, { for k, f in var.fleets : "schedule-${k}" => { rule = aws_cloudwatch_event_rule.schedule[k].name, fn = "autoscaler-${k}" } })
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
