#!/bin/sh
# The ops page's browser test: playwright-core from npm (into tests/ui/node_modules)
# driving Debian's chromium headless. Usage: tests/ui/run.sh (after `make build`).
# ARBITER_BIN / ARBITER_ADMIN_URL default to build/arbiter and the private cluster.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ ! -x /usr/bin/chromium ]; then
	echo "run.sh: installing Debian's chromium" >&2
	if [ "$(id -u)" -eq 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
	else
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
	fi
fi

cd "$here"
if [ ! -d node_modules/playwright-core ]; then
	if [ -f package-lock.json ]; then
		npm ci --no-audit --no-fund --loglevel=error
	else
		npm install --no-audit --no-fund --loglevel=error
	fi
fi

: "${ARBITER_BIN:=$repo/build/arbiter}"
if [ ! -x "$ARBITER_BIN" ]; then
	echo "run.sh: $ARBITER_BIN is missing; run make build first" >&2
	exit 2
fi
if [ -z "${ARBITER_ADMIN_URL:-}" ]; then
	ARBITER_ADMIN_URL=$(bash "$repo/deploy/local/pgctl.sh" admin-url)
fi
export ARBITER_BIN ARBITER_ADMIN_URL
exec node "$here/ui.test.mjs"
