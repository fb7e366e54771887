#!/bin/sh
# The contract types the event payloads: generate a TypeScript client from
# openapi/arbiter.yaml with openapi-typescript and compile events.ts (a small
# program reading a refund event's amounts) with tsc --strict. Run by
# `make lint`. npm's cache stays under build/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
command -v npm >/dev/null 2>&1 || { echo "check.sh: npm not found (make deps installs it)" >&2; exit 2; }
mkdir -p "$repo/build/npm-cache" "$repo/build/contract"
export npm_config_cache="$repo/build/npm-cache" npm_config_update_notifier=false npm_config_fund=false
cd "$here"
if [ ! -x node_modules/.bin/tsc ] || [ ! -x node_modules/.bin/openapi-typescript ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/openapi-typescript "$repo/openapi/arbiter.yaml" -o "$repo/build/contract/arbiter.ts" --silent
node_modules/.bin/tsc -p tsconfig.json
echo "contract types: events.ts compiles against the generated client (tsc --strict)"
