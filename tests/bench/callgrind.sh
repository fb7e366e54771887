#!/usr/bin/env bash
# Instructions per request on arbiter's hot paths, counted by callgrind
# (`make profile`): repeatable for the same binary and inputs, whatever
# else the machine is doing, where wall-clock profiles are not. arbiter
# runs under valgrind --tool=callgrind against the private cluster with
# instrumentation off; it is switched on for PROFILE_N requests of each kind
# (create, read by id, note action), one at a time, and the counts and the
# functions that spend them are written to build/profile/.
#
# Knobs: PROFILE_N (default 300).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
N=${PROFILE_N:-300}
OUT=$repo/build/profile
PY=/usr/bin/python3
mkdir -p "$OUT"
rm -f "$OUT"/callgrind.*

URL=${ARBITER_DATABASE_URL:-$(bash "$repo/deploy/local/pgctl.sh" url)}
BIN=$repo/build/arbiter
if [ -z "${ARBITER_DATABASE_URL:-}" ]; then
	# the private cluster: the owner migrates, the service's role owns nothing
	ARBITER_MIGRATE_DATABASE_URL=$(bash "$repo/deploy/local/pgctl.sh" owner-url) \
		ARBITER_RUNTIME_ROLE=arbiter "$BIN" migrate >/dev/null
else
	ARBITER_DATABASE_URL="$URL" "$BIN" migrate >/dev/null
fi
KEY=$(ARBITER_DATABASE_URL="$URL" "$BIN" keys create --role frontend --name profile-frontend)
AKEY=$(ARBITER_DATABASE_URL="$URL" "$BIN" keys create --role agent --name profile-agent)
PORT=$($PY "$here/report.py" free-port)

ARBITER_LISTEN=127.0.0.1:$PORT ARBITER_DATABASE_URL="$URL" ARBITER_LOG_LEVEL=warn \
	ARBITER_POLICY="$repo/deploy/policy/default.json" \
	valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.%p" \
	"$BIN" serve >"$OUT/arbiter.log" 2>&1 &
VG=$!
trap 'kill $VG 2>/dev/null || true; wait $VG 2>/dev/null || true' EXIT
$PY "$here/report.py" wait-ready "http://127.0.0.1:$PORT/readyz" 120 >/dev/null

# one phase: collection on, N requests, collection off, dump; the dump's
# total is that phase's instructions
phase() {
	local name=$1
	callgrind_control -i on "$VG" >/dev/null
	PROFILE_PHASE=$name $PY "$here/profile_load.py" "http://127.0.0.1:$PORT" "$KEY" "$AKEY" "$N" \
		"$OUT/ids.txt"
	callgrind_control -i off "$VG" >/dev/null
	callgrind_control -d "$name" "$VG" >/dev/null
}
phase create
phase get
phase note
sleep 1
{
	echo "# arbiter instructions per request (callgrind, $N requests per kind, commit $(git -C "$repo" rev-parse --short HEAD))"
	echo
	for f in $(ls -tr "$OUT"/callgrind.*.[0-9]* 2>/dev/null); do
		name=$(sed -n 's/^desc: Trigger: dump //p' "$f")
		total=$(sed -n 's/^totals: //p' "$f")
		[ -n "$name" ] && [ -n "$total" ] || continue
		echo "## $name: $(( total / N )) instructions per request ($total in all)"
		echo
		echo '```'
		callgrind_annotate "$f" 2>/dev/null | sed -n '/file:function/,$p' | sed -n '3,17p' |
			sed 's| \[/[^]]*\]$||; s|^\( *[0-9,]* ([ 0-9.%]*)\)  [^:]*/|\1  |'
		echo '```'
		echo
	done
} >"$OUT/PROFILE.md"
cat "$OUT/PROFILE.md"
