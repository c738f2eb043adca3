#!/usr/bin/env bash
# Regenerates the provider's docs with tfplugindocs from the provider's own schema, as OpenTofu
# reports it, and the examples under provider/examples. Usage: provider/gendocs.sh [DIR]
# writes DIR/docs from DIR/examples (DIR defaults to provider/). `make provider-docs` runs it;
# a test runs it into a copy and fails if the checked-in docs differ.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/provider}
tofu=${LIVEAGG_TOFU:?set LIVEAGG_TOFU to the tofu binary (make provider-docs does)}
tfplugindocs=${TFPLUGINDOCS:-${LIVEAGG_CACHE:-$HOME/.cache/liveagg}/bin/tfplugindocs}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$root" && go build -o "$work/bin/terraform-provider-liveagg" ./provider)
cat > "$work/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "registry.opentofu.org/liveagg/liveagg" = "$work/bin"
  }
  direct {}
}
TFRC
printf 'terraform {\n  required_providers {\n    liveagg = { source = "liveagg/liveagg" }\n  }\n}\n' > "$work/main.tf"
# tfplugindocs looks the provider up under Terraform's registry address.
(cd "$work" && TF_CLI_CONFIG_FILE="$work/dev.tfrc" "$tofu" providers schema -json 2>/dev/null) |
  sed 's#registry.opentofu.org/liveagg/liveagg#registry.terraform.io/hashicorp/liveagg#' > "$work/schema.json"
"$tfplugindocs" generate --provider-name liveagg --providers-schema "$work/schema.json" --provider-dir "$dir" >/dev/null
