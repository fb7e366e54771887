#!/bin/sh
# Lints openapi/arbiter.yaml with Redocly CLI (npm), using openapi/redocly.yaml
# (the recommended rules with every warning an error). Exits non-zero on any
# problem. npm's cache stays under build/, so nothing lands in $HOME.
#
#   REDOCLY_CLI   the npm package to run (default a version known to work
#                 with the Node.js of Debian-based CI; "@redocly/cli@latest"
#                 for the newest)
set -eu
cd "$(dirname "$0")/.."
: "${REDOCLY_CLI:=@redocly/cli@2.77.0}"
command -v npx >/dev/null 2>&1 || { echo "lint.sh: npx not found (install nodejs and npm)" >&2; exit 2; }
mkdir -p build/npm-cache
export npm_config_cache="$PWD/build/npm-cache" npm_config_update_notifier=false npm_config_fund=false
# The YAML must also be what the service serves: convert it the way the build does.
/usr/bin/python3 openapi/tojson.py openapi/arbiter.yaml build/openapi.lint.json
exec npx --yes "$REDOCLY_CLI" lint --config openapi/redocly.yaml --format=stylish openapi/arbiter.yaml
