#!/usr/bin/env bash
# The benchmark suite, in one invocation (`make bench`; `make bench-smoke` =
# BENCH_SMOKE=1 for CI, which only checks that everything works).
#
#  1. its own throwaway PostgreSQL 15 cluster, `arbiter migrate`, API keys, and
#     realistic data: BENCH_CASES cases (1 M; smoke 20 k) across BENCH_SHOPS
#     shops with their open events and seller_response deadlines (load.sql);
#     a release build of arbiter (`make build`);
#  2. baselines: pgbench running the service's own SQL (pgb_*.sql): create,
#     read by id, list by shop + state, one transition (note);
#  3. the service under wrk (wrk_*.lua), keep-alive, API keys on, the same four
#     workloads, at each of BENCH_CLIENTS; arbiter's CPU per request and
#     peak RSS per run;
#  3b. constant rate: each workload at 25/50/80 % of its peak (wrk_paced.lua),
#     p50/p99/p99.9 and the achieved rate;
#  4. SLA: time to /readyz 200 after a restart with every deadline pending;
#     a drain of BENCH_DRAIN deadlines due within the same second (real
#     deadlines of real cases) against pgbench running the same expiry SQL;
#     firing lag from the audit trail and commit timestamps.
# Then one table, printed and written to tests/bench/RESULTS.md (smoke:
# build/bench/RESULTS.smoke.md). Speed is never asserted: the run fails only
# when something does not work (a non-2xx, an aborted pgbench client, the
# service not coming up, a deadline not fired or fired twice).
#
# Knobs (environment): BENCH_SMOKE, BENCH_CASES, BENCH_SHOPS, BENCH_DURATION
# (s per run), BENCH_WARMUP (s of unrecorded wrk before each workload's
# runs), BENCH_CLIENTS ("1 16 64"), BENCH_DRAIN, BENCH_DRAIN_TIMEOUT,
# BENCH_RESULTS (output file), BENCH_RESULTS_JSONL (a copy of the raw
# records), BENCH_KEEP=1 (keep the scratch directory),
# BENCH_PACED_LEVELS (shares of each peak offered at a constant rate:
# "25 50 80"; smoke 50), BENCH_ONLY ("create get list note backtest sla shaped": a subset, for working on
# one path), BENCH_SHAPED_CASES (the shaped data set's size: 5 M; smoke 20 k),
# BENCH_PERF=1 (perf record -a -g during each wrk run, the top functions
# of every process written next to the results as
# profiles/perf_<workload>_c<N>.txt),
# ARBITER_DB_POOL (passed to the service), ARBITER_POLICY.
set -euo pipefail

T_START=$(date +%s%N)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
PY=/usr/bin/python3
REPORT="$here/report.py"
pgbin=${ARBITER_PGBIN:-/usr/lib/postgresql/15/bin}
PGBENCH=$pgbin/pgbench
[ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench)
PSQL=$pgbin/psql
[ -x "$PSQL" ] || PSQL=$(command -v psql)
command -v wrk >/dev/null || { echo "bench: wrk is not installed (make deps)" >&2; exit 1; }

SMOKE=${BENCH_SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
	N=${BENCH_CASES:-20000}; SHOPS=${BENCH_SHOPS:-200}; DUR=${BENCH_DURATION:-2}; WARM=${BENCH_WARMUP:-1}
	CLIENTS=${BENCH_CLIENTS:-"1 64"}; DRAIN=${BENCH_DRAIN:-2000}
	DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-30}; DRAIN_LEAD=3
	STEADY_LOW=200; STEADY_SECS=2; STEADY_HIGH=1000; STEADY_HIGH_SECS=1
	CREATE_RATE=${BENCH_CREATE_RATE:-50}; BATCHES=${BENCH_BATCHES:-"64 256"}; BATCH_DUR=2
	OUTFILE=${BENCH_RESULTS:-$repo/build/bench/RESULTS.smoke.md}
else
	# 12 s runs keep the whole suite under 10 minutes on 2 cores (15 s
	# runs took 610 s with the warm-ups)
	N=${BENCH_CASES:-1000000}; SHOPS=${BENCH_SHOPS:-10000}; DUR=${BENCH_DURATION:-12}; WARM=${BENCH_WARMUP:-3}
	CLIENTS=${BENCH_CLIENTS:-"1 16 64"}; DRAIN=${BENCH_DRAIN:-100000}
	DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-150}; DRAIN_LEAD=5
	# issue 5 asks the lag at 10 k/s; 1 k/s shows it where this machine
	# keeps up
	STEADY_LOW=1000; STEADY_SECS=5; STEADY_HIGH=10000; STEADY_HIGH_SECS=2
	# issue 11: the 1 k/s lag with creates running at the same time (a
	# modest, paced rate, not a peak); the batch sizes the batched expiry
	# baseline compares (FIRE_BATCH is chosen from them)
	CREATE_RATE=${BENCH_CREATE_RATE:-200}; BATCHES=${BENCH_BATCHES:-"32 64 128 256 1024"}; BATCH_DUR=6
	OUTFILE=${BENCH_RESULTS:-$here/RESULTS.md}
fi
BUYERS=$(( N * 3 / 10 > 0 ? N * 3 / 10 : 1 ))
# Slices of the loaded cases (case i has id 'c_' || md5('case' || i)):
#   [1, A]            wrk note runs (each wrk thread owns part of it)
#   [A+1, XLO-1]      pgbench note transitions (random)
#   [XLO, XLO+E-1]    pgbench expiry baseline (each client walks its own)
#   [SLO, SLO+S-1]    the steady-arrival runs (their own: pgbench may expire
#                     every deadline of its slice at smoke sizes)
#   [N-DRAIN+1, N]    the SLA drain
A=$(( N / 10 < 20000 ? N / 10 : 20000 ))
# sub-slices of E: the one-per-commit baseline and each batch size of the
# batched one walk their own, so none meets cases another run expired
E=$(( N * 3 / 10 < 300000 ? N * 3 / 10 : 300000 ))
ESUB=$(( E / ($(echo $BATCHES | wc -w) + 1) ))
# (only the SLA runs use it: a run without them needs no slice)
if [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" sla "* ]]; then
	S=$(( STEADY_LOW * STEADY_SECS + STEADY_HIGH * STEADY_HIGH_SECS ))
else
	S=0
fi
SLO=$(( N - DRAIN - S + 1 ))
XLO=$(( SLO - E ))
# The scheduler's horizon (SLA_HORIZON_MS): deadlines the SLA runs bring
# due are moved to more than this ahead, so that they enter the wheel as
# real ones do, by time passing (a silent seller's deadline was armed five
# days before), not through a full reload.
HORIZON_S=$(( $(sed -n 's/^#define SLA_HORIZON_MS \([0-9]*\).*/\1/p' "$repo/include/arbiter/sla.h") / 1000 ))
[ "$HORIZON_S" -gt 0 ] || { echo "bench: no SLA_HORIZON_MS in include/arbiter/sla.h" >&2; exit 2; }
FIRE_BATCH=$(sed -n 's/^#define FIRE_BATCH \([0-9]*\).*/\1/p' "$repo/src/sla.c")
FIRE_WORKERS=$(sed -n 's/^#define FIRE_WORKERS \([0-9]*\).*/\1/p' "$repo/src/sla.c")
DRAIN_LEAD=$(( HORIZON_S + DRAIN_LEAD ))
if [ "$XLO" -le $(( A + 100 )) ]; then
	echo "bench: BENCH_CASES=$N is too small for BENCH_DRAIN=$DRAIN" >&2; exit 2
fi
NSEL=$(( SHOPS < 64 ? SHOPS : 64 ))
SELSTRIDE=$(( SHOPS / NSEL ))
EXPIRE_CLIENTS=16

W=$(mktemp -d /var/tmp/arbiter-bench-XXXXXX)
chmod 755 "$W"
OUT=$W/out
mkdir -p "$OUT"
RES=$OUT/results.jsonl
META=$OUT/meta.tsv
export ARBITER_PG_DIR=$W/pg
PGCTL="bash $repo/deploy/local/pgctl.sh"
ARB_PID=
BG_PIDS=()
PROBLEMS=0

want() { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }
log() { printf '[bench %4ss] %s\n' "$(( ($(date +%s%N) - T_START) / 1000000000 ))" "$*" >&2; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
note() { meta note "$*"; }
problem() { meta problem "$*"; log "PROBLEM: $*"; PROBLEMS=$((PROBLEMS + 1)); }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
	local rc=$?
	set +e
	for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [ -n "$ARB_PID" ] && kill -0 "$ARB_PID" 2>/dev/null; then
		kill "$ARB_PID"; wait "$ARB_PID" 2>/dev/null
	fi
	if [ -f "$W/pg/data/PG_VERSION" ]; then
		as_pg "$pgbin/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1
	fi
	if [ "$rc" != 0 ] && [ -f "$OUT/arbiter.log" ]; then
		echo "---- last lines of arbiter's log ----" >&2
		tail -20 "$OUT/arbiter.log" >&2
	fi
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: scratch directory kept: $W" >&2
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
log "building (make build)"
make -s -C "$repo" build >&2
# The run measures one binary: a copy, so that a rebuild of build/arbiter
# during the run (or something signalling processes named arbiter) cannot
# change what is measured halfway.
mkdir -p "$W/bin"
cp "$repo/build/arbiter" "$W/bin/bench-service"
BIN=$W/bin/bench-service
POLICY=${ARBITER_POLICY:-$repo/deploy/policy/default.json}
PV=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$POLICY")

meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta commit "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
meta dirty "$( [ -n "$(git -C "$repo" status --porcelain -- src include sql Makefile 2>/dev/null)" ] && echo 1 || echo 0)"
meta nproc "$(nproc)"
meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
meta mem_gib "$(free -g | awk '/^Mem:/{print $2}')"
meta kernel "Linux $(uname -r)"
meta smoke "$SMOKE"
meta only "${BENCH_ONLY:-}"
meta cases "$N"; meta shops "$SHOPS"; meta buyers "$BUYERS"; meta duration "$DUR"
meta cflags "${CFLAGS:--O2 -g, hardened (Makefile default)}"
meta db_pool "${ARBITER_DB_POOL:-default}"
meta policy_version "$PV"
meta pg_version "$("$pgbin/postgres" --version | awk '{print $3}')"
meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- cluster
log "starting a throwaway PostgreSQL cluster in $W/pg"
# A port that binds now (pgctl.sh takes it from pg/port); another cluster
# starting at the same moment can take it first: start afresh then.
for try in 1 2 3 4 5; do
	mkdir -p "$W/pg"
	$PY "$REPORT" pg-port >"$W/pg/port"
	if $PGCTL start >/dev/null 2>"$OUT/pgctl.err"; then break; fi
	if [ "$try" = 5 ] || ! grep -q "already in use" "$OUT/pgctl.err"; then
		cat "$OUT/pgctl.err" >&2; exit 1
	fi
	rm -rf "$W/pg"
	sleep "0.$((RANDOM % 9 + 1))"
done
PGPORT=$(cat "$W/pg/port")
U="host=$W/pg port=$PGPORT dbname=arbiter user=arbiter"
AU="host=$W/pg port=$PGPORT dbname=arbiter user=postgres"
psql_a() { "$PSQL" -X -q -v ON_ERROR_STOP=1 "$AU" "$@"; }
psql_u() { "$PSQL" -X -q -v ON_ERROR_STOP=1 "$U" "$@"; }
pg_restart() { $PGCTL stop >/dev/null && $PGCTL start >/dev/null 2>>"$OUT/pgctl.err"; }

# Bulk load with wal_level=minimal (the load's tables are truncated in the
# loading transaction, so their writes skip WAL); back to replica with a
# restart before anything is measured. No checkpoint interrupts a run.
psql_a -c "ALTER SYSTEM SET wal_level = minimal" -c "ALTER SYSTEM SET max_wal_senders = 0" \
	-c "ALTER SYSTEM SET max_wal_size = '8GB'" -c "ALTER SYSTEM SET checkpoint_timeout = '30min'" \
	-c "ALTER SYSTEM SET track_commit_timestamp = on"
pg_restart
# as in production: the owner migrates, the service's role owns nothing
OU="host=$W/pg port=$PGPORT dbname=arbiter user=arbiter_owner"
ARBITER_MIGRATE_DATABASE_URL="$OU" ARBITER_RUNTIME_ROLE=arbiter "$BIN" migrate >"$OUT/migrate.out"

# ---------------------------------------------------------------- keys
log "API keys: frontend, agent, $NSEL sellers"
mk_key() { ARBITER_DATABASE_URL="$U" "$BIN" keys create "$@" 2>>"$OUT/keys.err"; }
FE_KEY=$(mk_key --role frontend --name bench-frontend)
AG_KEY=$(mk_key --role agent --name bench-agent)
FE_ID=$(echo "$FE_KEY" | cut -d_ -f2)
AG_ID=$(echo "$AG_KEY" | cut -d_ -f2)
: >"$OUT/sellers.txt"
for ((k = 0; k < NSEL; k++)); do
	shop=$(( 1000000 + k * SELSTRIDE ))
	echo "$(mk_key --role seller --name "bench-seller-$k" --shop "$shop") $shop" >>"$OUT/sellers.txt"
done

# ---------------------------------------------------------------- load
log "loading $N cases across $SHOPS shops"
T0=$(date +%s)
TL0=$(date +%s%N)
TABLES="'cases','case_events','case_deadlines'"
psql_a -At -c "SELECT indexdef || ';' FROM pg_indexes i WHERE schemaname = 'public'
	AND tablename IN ($TABLES) AND NOT EXISTS (SELECT 1 FROM pg_constraint c
	WHERE c.conname = i.indexname AND c.contype IN ('p', 'u', 'x'))" >"$OUT/indexes.sql"
psql_a -At -c "SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s;', conrelid::regclass, conname,
	pg_get_constraintdef(oid)) FROM pg_constraint WHERE contype = 'f' AND confrelid = 'cases'::regclass" \
	>"$OUT/fkeys.sql"
psql_a -At -c "SELECT format('DROP INDEX %I;', indexname) FROM pg_indexes i WHERE schemaname = 'public'
	AND tablename IN ($TABLES) AND NOT EXISTS (SELECT 1 FROM pg_constraint c
	WHERE c.conname = i.indexname AND c.contype IN ('p', 'u', 'x'))
	UNION ALL SELECT format('ALTER TABLE %s DROP CONSTRAINT %I;', conrelid::regclass, conname)
	FROM pg_constraint WHERE contype = 'f' AND confrelid = 'cases'::regclass" | psql_a
load_part() {
	local part=$1 table=$2
	"$PSQL" -X -q -v ON_ERROR_STOP=1 "$AU" -v part="$part" -v lo=1 -v hi="$N" \
		-v n_shops="$SHOPS" -v n_buyers="$BUYERS" -v t0="$T0" -v fe_key="$FE_ID" -v pv="$PV" \
		-c "BEGIN" -c "SET session_replication_role = replica" -c "TRUNCATE $table" \
		-f "$here/load.sql" -c "COMMIT"
}
load_part cases cases & p1=$!
load_part events case_events & p2=$!
load_part deadlines case_deadlines & p3=$!
wait $p1 && wait $p2 && wait $p3
TL1=$(date +%s%N)
# indexes in two sessions (the largest first), then the foreign keys
awk 'NR % 2 == 1' "$OUT/indexes.sql" >"$OUT/indexes.1.sql"
awk 'NR % 2 == 0' "$OUT/indexes.sql" >"$OUT/indexes.2.sql"
psql_a -c "SET maintenance_work_mem = '1GB'" -f "$OUT/indexes.1.sql" & p1=$!
psql_a -c "SET maintenance_work_mem = '1GB'" -f "$OUT/indexes.2.sql" & p2=$!
wait $p1 && wait $p2
psql_a -c "SET maintenance_work_mem = '1GB'" -f "$OUT/fkeys.sql"
TL2=$(date +%s%N)
psql_a -c "VACUUM ANALYZE cases" & p1=$!
psql_a -c "VACUUM ANALYZE case_events" -c "VACUUM ANALYZE case_deadlines" & p2=$!
wait $p1 && wait $p2
psql_a -c "ALTER SYSTEM RESET wal_level" -c "ALTER SYSTEM RESET max_wal_senders"
pg_restart
TL3=$(date +%s%N)
ms() { echo $(( ($2 - $1) / 1000000 )); }
meta load_rows_s "$(( $(ms "$TL0" "$TL1") / 1000 ))"
meta load_index_s "$(( $(ms "$TL1" "$TL2") / 1000 ))"
meta load_vacuum_s "$(( $(ms "$TL2" "$TL3") / 1000 ))"
meta load_total_s "$(( $(ms "$TL0" "$TL3") / 1000 ))"
meta pg_conf "shared_buffers=256MB max_connections=300 (deploy/local/pgctl.sh); max_wal_size=8GB, checkpoint_timeout=30min, track_commit_timestamp=on; synchronous_commit=on, fsync=on, wal_level=replica"
read -r n_cases n_events n_deadlines <<<"$(psql_a -At -F' ' -c "SELECT (SELECT count(*) FROM cases),
	(SELECT count(*) FROM case_events), (SELECT count(*) FROM case_deadlines)")"
[ "$n_cases" = "$N" ] && [ "$n_events" = "$N" ] && [ "$n_deadlines" = "$N" ] || {
	echo "bench: load incomplete: $n_cases cases, $n_events events, $n_deadlines deadlines" >&2; exit 1; }
# The loader computes each event's hash with the schema's own digest; check
# a sample here (the whole chain in the smoke run).
bad=$(psql_a -At -c "SELECT count(*) FROM case_events e WHERE e.id % 997 = 0
	AND e.hash <> arbiter_event_digest(e.prev_hash, e)")
[ "$bad" = 0 ] || { echo "bench: $bad loaded events have a wrong hash" >&2; exit 1; }
if [ "$SMOKE" = 1 ]; then
	ARBITER_DATABASE_URL="$U" "$BIN" verify >"$OUT/verify.out" 2>&1 ||
		{ cat "$OUT/verify.out" >&2; echo "bench: arbiter verify failed on the loaded data" >&2; exit 1; }
fi
log "loaded: $n_cases cases, $n_events events, $n_deadlines deadlines ($(( $(ms "$TL0" "$TL3") / 1000 )) s)"

# ---------------------------------------------------------------- service
PORT=$($PY "$REPORT" free-port)
URL=http://127.0.0.1:$PORT
start_arbiter() {
	ARBITER_LISTEN=127.0.0.1:$PORT ARBITER_DATABASE_URL="$U" ARBITER_POLICY="$POLICY" \
		ARBITER_LOG_LEVEL=${BENCH_LOG_LEVEL:-info} "$BIN" serve >>"$OUT/arbiter.log" 2>&1 &
	ARB_PID=$!
}
stop_arbiter() {
	kill "$ARB_PID" 2>/dev/null || true
	wait "$ARB_PID" 2>/dev/null || true
	ARB_PID=
}
start_arbiter
ready=$($PY "$REPORT" wait-ready "$URL/readyz" 30) || { echo "bench: arbiter did not become ready" >&2; exit 1; }
log "arbiter ready on $URL (pid $ARB_PID)"

# One case through the API: its stored JSON is what the create baseline sends.
iso() { date -u -d "@$(( $(date +%s) - $1 * 86400 ))" +%Y-%m-%dT%H:%M:%SZ; }
REF_BODY='{"kind":"refund","reason":"quality_defect","description":"The kettle leaks from the seam after the first boil (order bench-ref).","order":{"id":"bench-ref","shop_id":"1000000","buyer_id":"50000000","sku":"KETTLE-1L-WHITE","category":"kitchen","price_cents":10000,"shipping_fee_cents":800,"free_shipping":false,"paid_at":"'$(iso 4)'","promised_ship_by":"'$(iso 2)'","shipped_at":"'$(iso 3)'","delivered_at":"'$(iso 1)'"},"evidence":[{"kind":"photo","url":"https://img.example.com/ev/bench-ref-1.jpg","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]}'
code=$(curl -s -o "$OUT/ref_case.json" -w '%{http_code}' -X POST "$URL/v1/cases" \
	-H "Authorization: Bearer $FE_KEY" -H 'Content-Type: application/json' \
	-H 'Idempotency-Key: bench-ref' -d "$REF_BODY")
[ "$code" = 201 ] || { echo "bench: creating the reference case failed ($code)" >&2; cat "$OUT/ref_case.json" >&2; exit 1; }
REF_SQL="FROM cases c JOIN case_deadlines d ON d.case_id = c.id WHERE c.idem_key = 'bench-ref'"
ORDER_DOC=$(psql_u -At -c "SELECT c.order_doc $REF_SQL")
ALLOWED=$($PY -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["allowed_actions"], separators=(",", ":")))' "$OUT/ref_case.json")
EVIDENCE=$(psql_u -At -c "SELECT c.evidence $REF_SQL")
DECISION=$(psql_u -At -c "SELECT c.decision $REF_SQL")
DEADLINES=$(psql_u -At -c "SELECT json_build_array(json_build_object('name', d.name,
	'after_ms', (extract(epoch FROM d.due_at - c.created_at) * 1000)::bigint, 'on_expiry', d.on_expiry)) $REF_SQL")
EVENTS=$(psql_u -At -c "SELECT json_build_array(json_build_object('action', 'open', 'from_state', NULL,
	'to_state', c.state, 'data', json_build_object('kind', c.kind, 'reason', c.reason,
	'decision', c.decision))) $REF_SQL")
NOTE_EVENTS='[{"action":"note","from_state":"awaiting_seller","to_state":"awaiting_seller","data":{"text":"benchmark note"}}]'
EXPIRE_EVENTS='[{"action":"expire_seller_response","from_state":"awaiting_seller","to_state":"refund_pending","data":{"deadline":"seller_response","due_at":"'$(date -u +%Y-%m-%dT%H:%M:%S.000Z)'"}},{"action":"refund.instructed","from_state":"refund_pending","to_state":"refund_pending","data":{"item_cents":10000,"shipping_cents":800,"penalty_cents":0,"total_cents":10800,"currency":"CNY","reason":"seller_silent"}}]'

# ---------------------------------------------------------------- helpers
cpu_ticks() { awk '{print $14 + $15}' "/proc/$ARB_PID/stat"; }
hwm_reset() { echo 5 >"/proc/$ARB_PID/clear_refs" 2>/dev/null || true; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$ARB_PID/status"; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$ARB_PID/status"; }

# pgbench scripts: the service's statements pasted in from src/ (by statement name)
for t in create get note expire expire_batch; do
	$PY "$REPORT" sql "$repo/src" "$here/pgb_$t.sql" "$OUT/pgb_$t.sql"
done
cp "$here/pgb_list.sql" "$OUT/pgb_list.sql"
$PY "$REPORT" check-list "$repo/src/store_cases.c" >&2 || exit 1

PGB_COMMON=(-n -h "$W/pg" -p "$PGPORT" -U arbiter -T "$DUR" -l --sampling-rate=0.2)
PGB_VARS=(-D ncases="$N" -D nshops="$SHOPS" -D nbuyers="$BUYERS" -D nsel="$NSEL" -D selstride="$SELSTRIDE"
	-D tlo=$((A + 1)) -D thi=$((XLO - 1)) -D actor=pgbench -D pv="$PV"
	-D order_doc="$ORDER_DOC" -D evidence="$EVIDENCE" -D decision="$DECISION"
	-D deadlines="$DEADLINES" -D events="$EVENTS" -D note_events="$NOTE_EVENTS" -D allowed="$ALLOWED")
# Every measured run, pgbench's and wrk's alike, starts right after a
# CHECKPOINT: the first change to a page after one writes the whole page to
# the WAL (full_page_writes), so a run that followed another on warm pages
# would pay less of that than the one before it (with random ids: 6 full-page
# images per create just after a checkpoint, under 0.5 a few runs later).
checkpoint() { psql_a -c "CHECKPOINT" >/dev/null; }
run_pgb() {
	local name=$1 c=$2 mode=$3 script=$4 rc=0
	shift 4
	checkpoint
	local j=$(( c < 2 ? c : 2 )) pfx=$OUT/pgblog_${name}_c$c
	"$PGBENCH" "${PGB_COMMON[@]}" -M "$mode" -c "$c" -j "$j" --log-prefix="$pfx" \
		-f "$OUT/$script" "${PGB_VARS[@]}" "$@" arbiter >"$OUT/pgb_${name}_c$c.out" 2>&1 || rc=$?
	$PY "$REPORT" pgbench "$RES" "$name" "$c" "$OUT/pgb_${name}_c$c.out" "$pfx" "$rc" \
		"pgbench -n -M $mode -c $c -j $j -T $DUR -l --sampling-rate=0.2 -f $script -D ... arbiter"
	rm -f "$pfx".*
	[ "$rc" = 0 ] || problem "pgbench $name c=$c exited $rc: $(grep -m1 -iE 'error|abort' "$OUT/pgb_${name}_c$c.out" || true)"
	log "pgbench $name c=$c: $(grep -m1 '^tps' "$OUT/pgb_${name}_c$c.out" || echo failed)"
}
alive() {
	if [ -z "$ARB_PID" ] || ! kill -0 "$ARB_PID" 2>/dev/null; then
		problem "the service (pid ${ARB_PID:-none}) is not running before $1"
		exit 1
	fi
}
run_wrk() {
	local name=$1 c=$2 lua=$3 rc=0
	local t=$(( c < 2 ? c : 2 )) cpu0 cpu1
	alive "wrk $name c=$c"
	checkpoint
	hwm_reset
	cpu0=$(cpu_ticks)
	local perf_pid=
	if [ "${BENCH_PERF:-0}" = 1 ]; then
		# system-wide: arbiter makes a thread per connection after this
		# starts, and PostgreSQL's side of the work is half the story
		perf record -q -e cpu-clock -a -g -o "$OUT/perf_${name}_c$c.data" 2>/dev/null &
		perf_pid=$!
	fi
	BENCH_THREADS=$t BENCH_LUA_DIR=$here BENCH_RUN_SALT="$name$c$RANDOM" \
		wrk -t"$t" -c"$c" -d"${DUR}s" --timeout 10s --latency -s "$here/$lua" "$URL" \
		>"$OUT/wrk_${name}_c$c.out" 2>&1 || rc=$?
	if ! kill -0 "$ARB_PID" 2>/dev/null; then
		problem "arbiter died during wrk $name c=$c"
		exit 1
	fi
	cpu1=$(cpu_ticks)
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
		mkdir -p "$(dirname "$OUTFILE")/profiles"
		perf report -q -i "$OUT/perf_${name}_c$c.data" --stdio --no-children --percent-limit 0.5 \
			-g none --sort comm,dso,symbol 2>/dev/null >"$(dirname "$OUTFILE")/profiles/perf_${name}_c$c.txt" || true
	fi
	$PY "$REPORT" wrk "$RES" "$name" "$c" "$OUT/wrk_${name}_c$c.out" "$rc" "$((cpu1 - cpu0))" "$(hwm_kb)" \
		"wrk -t$t -c$c -d${DUR}s --timeout 10s --latency -s tests/bench/$lua \$URL"
	log "wrk $name c=$c: $(grep -m1 'Requests/sec' "$OUT/wrk_${name}_c$c.out" || echo failed)"
}

# Before each workload's series: a run at the largest connection count that
# is not recorded. A service that has been up for a while has its pool's
# connections open and their statements planned, and its PostgreSQL
# backends have compiled the plpgsql they call; a fresh one pays that once
# per connection (a first create on a new backend took 130 ms here, against
# 6 ms after), which would land in whichever run first needs the connection.
warm_wrk() {
	local name=$1 lua=$2 c=${CLIENTS##* } t
	t=$(( c < 2 ? c : 2 ))
	alive "the warm-up of $name"
	BENCH_THREADS=$t BENCH_LUA_DIR=$here BENCH_RUN_SALT="warm$name$RANDOM" \
		wrk -t"$t" -c"$c" -d"${WARM}s" --timeout 10s -s "$here/$lua" "$URL" \
		>"$OUT/wrk_warm_$name.out" 2>&1 || problem "the warm-up of $name failed: $(tail -1 "$OUT/wrk_warm_$name.out")"
}

export BENCH_FE_KEY=$FE_KEY BENCH_KEY=$AG_KEY BENCH_SHOPS=$SHOPS BENCH_BUYERS=$BUYERS
export BENCH_IDS_FILE=$OUT/ids.txt BENCH_SELLERS_FILE=$OUT/sellers.txt BENCH_ACTION_FILE=$OUT/action_cases.txt
psql_u -At -c "SELECT 'c_' || md5('case' || (1 + floor(random() * $N))::bigint) FROM generate_series(1, 100000)" \
	>"$BENCH_IDS_FILE"
action_cases() {
	# wrk stops with requests in flight; the service still commits them.
	# Read the versions only once none of its transactions is open (at most
	# 5 s), or a case's next note would carry a version one behind.
	local i
	for i in $(seq 50); do
		[ "$(psql_u -At -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND pid <> pg_backend_pid() AND backend_type = 'client backend'
			AND state IN ('active', 'idle in transaction')")" = 0 ] && break
		sleep 0.1
	done
	psql_u -At -F' ' -c "SELECT c.id, c.version FROM generate_series(1, $A) g(i)
		JOIN cases c ON c.id = 'c_' || md5('case' || g.i)" >"$BENCH_ACTION_FILE"
}
xid() { psql_u -At -c "SELECT pg_current_xact_id()"; }
xacts_of() { local t=0 c n; for c in $CLIENTS; do
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$OUT/pgb_$1_c$c.out")
	t=$(( t + ${n:-0} )); done; echo "$t"; }

# ---------------------------------------------------------------- baselines
# PostgreSQL's own ceiling: the service is stopped (its scheduler's periodic
# queries would otherwise run against the baseline).
stop_arbiter
log "baselines: pgbench, $DUR s per run, clients $CLIENTS"
# The least work each endpoint could do (issue 21): tables of the cases'
# width with a primary key and one list index (min_tables.sql), beside the
# service's; dropped before the service runs.
if want create || want get || want list || want note; then
	TM0=$(date +%s%N)
	psql_a -f "$here/min_tables.sql" >/dev/null
	meta min_tables_s "$(( ($(date +%s%N) - TM0) / 1000000000 ))"
	for t in create get list note; do cp "$here/pgb_min_$t.sql" "$OUT/pgb_min_$t.sql"; done
fi
for t in create get note; do
	if want $t; then for c in $CLIENTS; do run_pgb "min_$t" "$c" prepared "pgb_min_$t.sql"; done; fi
done
if want list; then for c in $CLIENTS; do run_pgb min_list "$c" extended pgb_min_list.sql; done; fi
psql_a -c "DROP TABLE IF EXISTS min_cases, min_events" >/dev/null
made=0 notes=0
if want create; then
	for c in $CLIENTS; do run_pgb create "$c" prepared pgb_create.sql; done
	made=$(psql_u -At -c "SELECT count(*) FROM cases WHERE idem_scope = 'pgbench'")
	[ "$made" = "$(xacts_of create)" ] || problem "pgbench create: $(xacts_of create) transactions but $made cases"
fi
if want get; then for c in $CLIENTS; do run_pgb get "$c" prepared pgb_get.sql; done; fi
if want list; then for c in $CLIENTS; do run_pgb list "$c" extended pgb_list.sql; done; fi
if want note; then
	x0=$(xid)
	for c in $CLIENTS; do run_pgb note "$c" prepared pgb_note.sql; done
	# A note whose case another client changed between its read and its
	# write applies nothing (as the service would answer 412): rare here.
	notes=$(psql_u -At -c "SELECT count(*) FROM case_events WHERE xid > '$x0' AND xid < pg_current_xact_id()
		AND action = 'note' AND actor_id = 'pgbench'")
	[ "$notes" -ge $(( $(xacts_of note) * 9 / 10 )) ] || problem "pgbench note: $(xacts_of note) transactions but $notes notes written"
fi
note "pgbench wrote $made cases in $(xacts_of create) create transactions and $notes notes in $(xacts_of note) transition transactions (a note whose case changed between its two statements writes nothing)."

# ---------------------------------------------------------------- service
# the backtest workload replays the cases created from here on, over HTTP
# (their open events carry the inputs; the loaded ones and pgbench's rows
# predate them)
BT_SINCE=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
start_arbiter
$PY "$REPORT" wait-ready "$URL/readyz" 30 >/dev/null || { echo "bench: arbiter did not become ready" >&2; exit 1; }
log "service: wrk, $DUR s per run, connections $CLIENTS"
if want create; then warm_wrk create wrk_create.lua; for c in $CLIENTS; do run_wrk create "$c" wrk_create.lua; done; fi
if want get; then warm_wrk get wrk_get.lua; for c in $CLIENTS; do run_wrk get "$c" wrk_get.lua; done; fi
if want list; then warm_wrk list wrk_list.lua; for c in $CLIENTS; do run_wrk list "$c" wrk_list.lua; done; fi

# Every list filter's plan: tests/bench/plans.py on the shaped data (part shaped).
if want note; then
	action_cases; warm_wrk note wrk_note.lua
	for c in $CLIENTS; do action_cases; run_wrk note "$c" wrk_note.lua; done
fi

# ---------------------------------------------------------------- constant rate
# Issue 21: latency at fixed offered rates, shares of each workload's peak
# above, on as many connections as the largest closed-loop run (so a slow
# reply leaves idle connections to keep the schedule).
run_paced() {
	local name=$1 lua=$2 level=$3 peak rate c=${CLIENTS##* } t rc=0
	t=$(( c < 2 ? c : 2 ))
	peak=$($PY "$REPORT" peak "$RES" "$name")
	rate=$(( peak * level / 100 ))
	if [ "$rate" -lt "$t" ]; then
		problem "paced $name: no peak to take $level % of ($peak req/s)"
		return
	fi
	alive "paced $name at $level %"
	checkpoint
	BENCH_THREADS=$t BENCH_LUA_DIR=$here BENCH_RUN_SALT="paced$name$level$RANDOM" \
		BENCH_PACED=$lua BENCH_RATE=$rate \
		wrk -t"$t" -c"$c" -d"${DUR}s" --timeout 10s -s "$here/wrk_paced.lua" "$URL" \
		>"$OUT/wrk_paced_${name}_$level.out" 2>&1 || rc=$?
	$PY "$REPORT" paced "$RES" "$name" "$level" "$rate" "$c" "$OUT/wrk_paced_${name}_$level.out" "$rc" \
		"BENCH_PACED=$lua BENCH_RATE=$rate wrk -t$t -c$c -d${DUR}s --timeout 10s -s tests/bench/wrk_paced.lua \$URL"
	log "paced $name at $level % of $peak = $rate/s: $(grep -m1 'Requests/sec' "$OUT/wrk_paced_${name}_$level.out" || echo failed)"
}
PACED_LEVELS=${BENCH_PACED_LEVELS:-"25 50 80"}
[ "$SMOKE" = 1 ] && PACED_LEVELS=${BENCH_PACED_LEVELS:-50}
for lv in $PACED_LEVELS; do
	if want create; then run_paced create wrk_create.lua "$lv"; fi
	if want get; then run_paced get wrk_get.lua "$lv"; fi
	if want list; then run_paced list wrk_list.lua "$lv"; fi
	if want note; then action_cases; run_paced note wrk_note.lua "$lv"; fi
done

# ---------------------------------------------------------------- backtest
# Issue 28: decisions/s of `arbiter backtest` and of a server job on the
# cases this run created, the CLI's RSS for N/10 and N of them, and the
# create p99 at a quarter of the create peak without and with jobs running
# (tests/bench/backtest_load.py).
if want backtest; then
	alive "the backtest workload"
	bt_peak=$($PY "$REPORT" peak "$RES" create 2>/dev/null || echo 0)
	BT_RATE=$(( bt_peak / 4 > 0 ? bt_peak / 4 : CREATE_RATE ))
	BT_KEY=$(mk_key --role admin --name bench-backtest)
	# alone/during pairs: 8 at full size (a 6 s round's p99 varies 3x on
	# this machine by itself), 2 in the smoke run
	[ "$SMOKE" = 1 ] && export BT_ROUNDS=${BT_ROUNDS:-2}
	log "backtest: cases created since $BT_SINCE; creates paced at $BT_RATE/s"
	$PY "$here/backtest_load.py" "$RES" "$BIN" "$U" "$URL" "$BT_KEY" "$BT_SINCE" "$BT_RATE" "$DUR" \
		"$here" "$OUT" >"$OUT/backtest.out" 2>&1 || problem "backtest workload: $(tail -2 "$OUT/backtest.out" | tr '\n' ' ')"
	log "$(tail -1 "$OUT/backtest.out")"
fi

# ---------------------------------------------------------------- SLA
if want sla; then
alive "the restart"
stop_arbiter

# The database's own expiry rate: pgbench, the scheduler's SQL, the service
# stopped. case_apply fires only a deadline that is due, so the expiry slice's
# deadlines are made due first, and the ones pgbench did not reach are put
# back in the future afterwards.
log "baseline: pgbench expiry transition, c=$EXPIRE_CLIENTS, then batches of $BATCHES at c=$FIRE_WORKERS"
psql_u -c "UPDATE case_deadlines d SET due_at = now() - interval '1 s', reminded = true
	FROM generate_series($XLO, $((XLO + E - 1))) g(i)
	WHERE d.case_id = 'c_' || md5('case' || g.i) AND d.name = 'seller_response'"
expire_events() {
	psql_u -At -c "SELECT count(*) FROM generate_series($1, $(( $1 + ESUB - 1 ))) g(i)
		JOIN case_events e ON e.case_id = 'c_' || md5('case' || g.i)
		WHERE e.actor_id = '$2' AND e.action = 'expire_seller_response'"
}
run_pgb expire "$EXPIRE_CLIENTS" prepared pgb_expire.sql -D elo="$XLO" -D esize="$ESUB" -D k=0 \
	-D nclients="$EXPIRE_CLIENTS" -D refund=10800 -D expire_events="$EXPIRE_EVENTS"
expired=$(expire_events "$XLO" pgbench-expire)
[ "$expired" -gt 0 ] || problem "pgbench expire wrote no expiry"
pgb_dur=$(sed -n 's/^duration: \([0-9]*\) s/\1/p' "$OUT/pgb_expire_c$EXPIRE_CLIENTS.out")
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"expire_pgbench\",\"value\":$($PY -c "print($expired / ${pgb_dur:-$DUR})"),\"clients\":$EXPIRE_CLIENTS,\"label\":\"pgbench, the same expiry SQL (case_claim + case_expire), one expiry per commit ($expired in ${pgb_dur:-$DUR} s)\",\"cmd\":\"pgbench -n -M prepared -c $EXPIRE_CLIENTS -j 2 -T $DUR -f pgb_expire.sql; expire events written / duration\"}"
# The batched baseline: what the database rewards per batch size, with as
# many clients as the scheduler has workers, each sub-slice walked by one
# size only.
bi=1
for b in $BATCHES; do
	lo=$(( XLO + bi * ESUB ))
	PGB_COMMON_SAVED=("${PGB_COMMON[@]}")
	PGB_COMMON=(-n -h "$W/pg" -p "$PGPORT" -U arbiter -T "$BATCH_DUR" -l --sampling-rate=1)
	run_pgb "expire_b$b" "$FIRE_WORKERS" prepared pgb_expire_batch.sql -D elo="$lo" -D esize="$ESUB" -D k=0 \
		-D nclients="$FIRE_WORKERS" -D batch="$b" -D refund=10800 -D expire_events="$EXPIRE_EVENTS" \
		-D actor_expire="pgbench-expire-b$b"
	PGB_COMMON=("${PGB_COMMON_SAVED[@]}")
	got=$(expire_events "$lo" "pgbench-expire-b$b")
	[ "$got" -gt 0 ] || problem "pgbench expire batch $b wrote no expiry"
	d=$(sed -n 's/^duration: \([0-9]*\) s/\1/p' "$OUT/pgb_expire_b${b}_c$FIRE_WORKERS.out")
	$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"expire_batch\",\"batch\":$b,\"value\":$($PY -c "print($got / ${d:-$BATCH_DUR})"),\"clients\":$FIRE_WORKERS,\"label\":\"pgbench, the scheduler's batch: case_claim + case_expire for $b cases per commit, c=$FIRE_WORKERS ($got in ${d:-$BATCH_DUR} s)\",\"cmd\":\"pgbench -n -M prepared -c $FIRE_WORKERS -j 2 -T $BATCH_DUR -f pgb_expire_batch.sql -D batch=$b; expire events written / duration\"}"
	log "pgbench expire batch $b c=$FIRE_WORKERS: $got expiries in ${d:-$BATCH_DUR} s"
	bi=$(( bi + 1 ))
done
psql_u -c "UPDATE case_deadlines d SET due_at = now() + interval '3 days', reminded = false
	FROM generate_series($XLO, $((XLO + E - 1))) g(i)
	WHERE d.case_id = 'c_' || md5('case' || g.i) AND d.name = 'seller_response'"

pending=$(psql_u -At -c "SELECT count(*) FROM case_deadlines")
log "SLA: restart with $pending pending deadlines"
t0=$(date +%s%N)
start_arbiter
if $PY "$REPORT" wait-ready "$URL/readyz" 60 >/dev/null; then
	t1=$(date +%s%N)
	$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"ready_ms\",\"value\":$(( (t1 - t0) / 1000000 )),\"pending\":$pending,\"label\":\"time from start to /readyz 200\",\"cmd\":\"kill -TERM arbiter; arbiter serve & poll GET /readyz every 5 ms\"}"
	log "ready after $(( (t1 - t0) / 1000000 )) ms"
else
	problem "arbiter not ready 60 s after a restart with $pending pending deadlines"
	exit 1
fi

# the drain: DRAIN real deadlines of real loaded cases, moved to one second
# that starts a few seconds from now while the service runs; their 24 h
# reminders went out long ago (reminded = true), as they would have.
log "SLA: drain of $DRAIN deadlines due within the same second"
rss0=$(rss_kb)
hwm_reset
xd0=$(xid)
DUE=$(psql_u -At -c "SELECT extract(epoch FROM date_trunc('second', now()) + interval '$DRAIN_LEAD s')::bigint")
moved=$(psql_u -At -c "WITH u AS (UPDATE case_deadlines d SET due_at = to_timestamp($DUE) + (g.i % 1000) * interval '1 ms',
	reminded = true FROM generate_series($((N - DRAIN + 1)), $N) g(i)
	WHERE d.case_id = 'c_' || md5('case' || g.i) AND d.name = 'seller_response' RETURNING 1) SELECT count(*) FROM u")
[ "$moved" = "$DRAIN" ] || problem "drain: moved $moved deadlines, wanted $DRAIN"
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"drain_n\",\"value\":$moved,\"label\":\"mass expiry\",\"cmd\":\"UPDATE case_deadlines SET due_at = <T> + (i % 1000) ms, reminded = true for the seller_response deadlines of cases i in the drain slice; T = a whole second $DRAIN_LEAD s ahead\"}"
# HTTP while draining: GET by id, 16 connections, from just before T
( sleep $(( DUE - $(date +%s) - 1 > 0 ? DUE - $(date +%s) - 1 : 0 ));
  BENCH_THREADS=2 BENCH_LUA_DIR=$here wrk -t2 -c16 -d"$(( DUR < 10 ? DUR : 10 ))s" --timeout 10s --latency \
	-s "$here/wrk_get.lua" "$URL" >"$OUT/wrk_get_drain.out" 2>&1 ) & wrk_drain=$!
BG_PIDS+=("$wrk_drain")
deadline=$(( DUE + DRAIN_TIMEOUT ))
left=$DRAIN
while [ "$(date +%s)" -lt "$deadline" ]; do
	left=$(psql_u -At -c "SELECT count(*) FROM case_deadlines WHERE due_at >= to_timestamp($DUE)
		AND due_at < to_timestamp($DUE) + interval '1 s'")
	[ "$left" = 0 ] && break
	sleep 0.5
done
wait "$wrk_drain" 2>/dev/null || true
if [ "$left" != 0 ]; then
	# Slow is a finding, not a failure, in the full run; the smoke run's
	# few deadlines must all fire.
	if [ "$SMOKE" = 1 ]; then
		problem "drain: $left of $DRAIN deadlines still pending ${DRAIN_TIMEOUT} s after they were due"
	else
		note "The drain was cut off ${DRAIN_TIMEOUT} s after the due second with $left of $DRAIN deadlines still pending; its rate is over the deadlines fired by then."
	fi
fi
sleep 0.2
# Only the drain's deadlines can fire now (every other one is days away):
# its events are the scheduler's expire events written since xd0, found
# through the feed index on xid.
psql_u -At -F' ' -c "
	WITH e AS (SELECT ev.case_id, pg_xact_commit_timestamp(ev.xid::text::xid) AS committed, ev.at,
	             (ev.data->>'due_at')::timestamptz AS due
	        FROM case_events ev
	       WHERE ev.xid > '$xd0'::xid8 AND ev.action = 'expire_seller_response'
	         AND ev.actor_role = 'system')
	SELECT count(*), count(*) - count(DISTINCT case_id),
	       coalesce(extract(epoch FROM max(committed) - to_timestamp($DUE)), 0),
	       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM committed - due) * 1000), 0),
	       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM committed - due) * 1000), 0),
	       coalesce(max(extract(epoch FROM committed - due) * 1000), 0),
	       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM at - due) * 1000), 0),
	       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM at - due) * 1000), 0),
	       coalesce(max(extract(epoch FROM at - due) * 1000), 0),
	       (SELECT count(*) FROM case_deadlines WHERE due_at >= to_timestamp($DUE)
	           AND due_at < to_timestamp($DUE) + interval '1 s')
	  FROM e" >"$OUT/drain.txt"
read -r fired dups span c50 c99 cmax a50 a99 amax still <"$OUT/drain.txt"
# one snapshot: every moved deadline is either still pending or fired once
[ $(( fired - dups + still )) = "$DRAIN" ] ||
	problem "drain: $((fired - dups)) deadlines fired and $still pending make not $DRAIN"
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"drain_fired\",\"value\":$fired,\"dups\":$dups,\"label\":\"expire_seller_response events written by the scheduler\",\"cmd\":\"count of the scheduler's expire_seller_response events written since the drain's UPDATE (every other deadline is days away)\"}"
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"drain_rate\",\"value\":$($PY -c "print($fired / max($span, 0.001))"),\"label\":\"drain rate (fired ÷ seconds from the first due time to the last commit; $fired in ${span} s)\",\"cmd\":\"pg_xact_commit_timestamp of the events' transactions (track_commit_timestamp=on)\"}"
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"lag_commit\",\"value\":{\"p50\":$c50,\"p99\":$c99,\"max\":$cmax},\"label\":\"firing lag, commit time − due time\",\"cmd\":\"pg_xact_commit_timestamp(event xid) − (event data due_at)\"}"
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"lag_at\",\"value\":{\"p50\":$a50,\"p99\":$a99,\"max\":$amax},\"label\":\"firing lag as the audit trail says (event at = its transaction's start) − due time\",\"cmd\":\"case_events.at − (data due_at)\"}"
log "drain: $fired fired ($dups twice) in ${span} s; lag p50 ${c50} ms p99 ${c99} ms"
if grep -q '^BENCH_RESULT' "$OUT/wrk_get_drain.out"; then
	dr=$($PY -c "import json,sys; r=json.loads(open(sys.argv[1]).read().split('BENCH_RESULT ',1)[1].splitlines()[0]); print('p50 %.2f ms, p99 %.2f ms, %.0f req/s, %d non-2xx' % (r['p50_us']/1000, r['p99_us']/1000, r['requests']*1e6/r['duration_us'], r['non2xx']))" "$OUT/wrk_get_drain.out")
	$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"drain_get_p99\",\"value\":\"$dr\",\"label\":\"GET /v1/cases/{id}, 16 connections, during the drain\",\"cmd\":\"wrk -t2 -c16 -d$(( DUR < 10 ? DUR : 10 ))s --latency -s tests/bench/wrk_get.lua \$URL (started 1 s before the due second)\"}"
	grep -q '"non2xx":0,' "$OUT/wrk_get_drain.out" || problem "non-2xx answers to GET during the drain"
fi
hwm=$(hwm_kb)
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"wheel_rss\",\"value\":\"$(( hwm / 1024 )) MiB at most during the drain (VmHWM), $(( rss0 / 1024 )) MiB (VmRSS) just before it\",\"label\":\"arbiter memory during the drain (the wheel holds the deadlines of the next 30 s, each row loaded as time brings it into the horizon, so a per-million figure cannot be read from outside; tests/bench/tw_bench.c measures bytes per timer)\"}"

# Steady arrivals: RATE deadlines a second for SECS seconds, spread evenly
# (not a burst), from the expiry slice's deadlines that pgbench left
# pending. Both rates are planned by one UPDATE each before either is due,
# more than the scheduler's horizon ahead, so their deadlines enter the
# wheel by time passing, as real ones do: the low rate first, with a paced
# create load (wrk, CREATE_RATE a second) from 2 s before its first
# deadline to 1 s after its last, then the high rate once the low one is
# over. Lag from commit timestamps, as for the drain.
plan_steady() {
	local rate=$1 secs=$2 due=$3
	psql_u -At -c "WITH k AS (SELECT d.case_id, row_number() OVER () - 1 AS r
		  FROM generate_series($SLO, $((SLO + S - 1))) g(i)
		  JOIN case_deadlines d ON d.case_id = 'c_' || md5('case' || g.i) AND d.name = 'seller_response'
		 WHERE d.due_at > now() + interval '1 hour' LIMIT $(( rate * secs ))),
		u AS (UPDATE case_deadlines d SET due_at = to_timestamp($due) + k.r * interval '1 second' / $rate,
		  reminded = true FROM k WHERE d.case_id = k.case_id AND d.name = 'seller_response' RETURNING 1)
		SELECT count(*) FROM u"
}
# fired, lag p50/p99/max (ms), seconds from the first due time to the last
# commit, of the scheduler's expiries of the deadlines due in [due, due + secs)
steady_lag() {
	local xs=$1 due=$2 secs=$3
	psql_u -At -F' ' -c "
		WITH e AS (SELECT pg_xact_commit_timestamp(ev.xid::text::xid) AS committed,
		                 (ev.data->>'due_at')::timestamptz AS due
		        FROM case_events ev WHERE ev.xid > '$xs'::xid8
		         AND ev.action = 'expire_seller_response' AND ev.actor_role = 'system'),
		     w AS (SELECT committed, extract(epoch FROM committed - due) * 1000 AS lag FROM e
		            WHERE due >= to_timestamp($due) AND due < to_timestamp($due + $secs))
		SELECT count(*), coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), 0),
		       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), 0), coalesce(max(lag), 0),
		       coalesce(extract(epoch FROM max(committed) - to_timestamp($due)), 0) FROM w"
}
pending_in() {
	psql_u -At -c "SELECT count(*) FROM case_deadlines WHERE due_at >= to_timestamp($1)
		AND due_at < to_timestamp($1 + $2)"
}
xs=$(xid)
LEAD=$(( HORIZON_S + 5 ))
DUE_LOW=$(psql_u -At -c "SELECT extract(epoch FROM date_trunc('second', now()) + interval '$LEAD s')::bigint")
DUE_HIGH=$(( DUE_LOW + STEADY_SECS + (STEADY_SECS < 5 ? 5 : STEADY_SECS) ))
moved_low=$(plan_steady "$STEADY_LOW" "$STEADY_SECS" "$DUE_LOW")
moved_high=$(plan_steady "$STEADY_HIGH" "$STEADY_HIGH_SECS" "$DUE_HIGH")
[ "$moved_low" -eq $(( STEADY_LOW * STEADY_SECS )) ] && [ "$moved_high" -eq $(( STEADY_HIGH * STEADY_HIGH_SECS )) ] ||
	problem "the steady runs found $moved_low + $moved_high pending deadlines of the $(( STEADY_LOW * STEADY_SECS )) + $(( STEADY_HIGH * STEADY_HIGH_SECS )) they need"
log "SLA: steady $STEADY_LOW/s due from $LEAD s ahead (with $CREATE_RATE creates/s), then $STEADY_HIGH/s"
CREATE_CONNS=4
( sleep $(( DUE_LOW - $(date +%s) - 2 > 0 ? DUE_LOW - $(date +%s) - 2 : 0 ));
  BENCH_THREADS=2 BENCH_LUA_DIR=$here BENCH_RUN_SALT="slacreate$RANDOM" BENCH_CONNS=$CREATE_CONNS \
	BENCH_CREATE_RATE=$CREATE_RATE wrk -t2 -c$CREATE_CONNS -d"$(( STEADY_SECS + 3 ))s" --timeout 10s --latency \
	-s "$here/wrk_create_paced.lua" "$URL" >"$OUT/wrk_create_steady.out" 2>&1 ) & wrk_steady=$!
BG_PIDS+=("$wrk_steady")
end=$(( DUE_HIGH + STEADY_HIGH_SECS + DRAIN_TIMEOUT ))
left=1
while [ "$(date +%s)" -lt "$end" ]; do
	left=$(( $(pending_in "$DUE_LOW" "$STEADY_SECS") + $(pending_in "$DUE_HIGH" "$STEADY_HIGH_SECS") ))
	[ "$left" = 0 ] && [ "$(date +%s)" -gt $(( DUE_HIGH + STEADY_HIGH_SECS )) ] && break
	sleep 0.5
done
wait "$wrk_steady" 2>/dev/null || true
sleep 0.2
read -r fired l50 l99 lmax span <<<"$(steady_lag "$xs" "$DUE_LOW" "$STEADY_SECS")"
creates="no create figures"
if grep -q '^BENCH_RESULT' "$OUT/wrk_create_steady.out"; then
	creates=$($PY -c "import json,sys; r=json.loads(open(sys.argv[1]).read().split('BENCH_RESULT ',1)[1].splitlines()[0]); print('%d creates, %.0f/s, p50 %.2f ms, p99 %.2f ms, %d non-2xx' % (r['requests'], r['requests']*1e6/r['duration_us'], r['p50_us']/1000, r['p99_us']/1000, r['non2xx']))" "$OUT/wrk_create_steady.out")
	grep -q '"non2xx":0,' "$OUT/wrk_create_steady.out" || problem "non-2xx answers to the creates during the steady run"
else
	problem "the paced creates during the steady run reported nothing"
fi
[ "$(pending_in "$DUE_LOW" "$STEADY_SECS")" = 0 ] || note "Steady $STEADY_LOW/s: deadlines still pending ${DRAIN_TIMEOUT} s after the last was due; the lag is over those fired."
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"lag_steady_low\",\"value\":{\"p50\":$l50,\"p99\":$l99,\"max\":$lmax},\"fired\":$fired,\"moved\":$moved_low,\"creates\":\"$creates\",\"label\":\"firing lag at $STEADY_LOW deadlines/s for $STEADY_SECS s while creates run (commit time − due time; $fired of $moved_low fired; creates: $creates)\",\"cmd\":\"UPDATE case_deadlines SET due_at = T + r / $STEADY_LOW s for $moved_low pending seller_response deadlines, T a whole second $LEAD s ahead; wrk -t2 -c$CREATE_CONNS -d$(( STEADY_SECS + 3 ))s -s tests/bench/wrk_create_paced.lua (BENCH_CREATE_RATE=$CREATE_RATE) from T − 2 s; pg_xact_commit_timestamp(event xid) − due_at\"}"
log "steady $STEADY_LOW/s: $fired of $moved_low fired; lag p50 $l50 ms p99 $l99 ms; $creates"
[ "$fired" -eq "$moved_low" ] || problem "steady $STEADY_LOW/s: $fired of $moved_low deadlines fired"
read -r fired l50 l99 lmax span <<<"$(steady_lag "$xs" "$DUE_HIGH" "$STEADY_HIGH_SECS")"
[ "$(pending_in "$DUE_HIGH" "$STEADY_HIGH_SECS")" = 0 ] || note "Steady $STEADY_HIGH/s: deadlines still pending ${DRAIN_TIMEOUT} s after the last was due; the lag and rate are over those fired."
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"lag_steady_high\",\"value\":{\"p50\":$l50,\"p99\":$l99,\"max\":$lmax},\"fired\":$fired,\"moved\":$moved_high,\"label\":\"firing lag at $STEADY_HIGH deadlines/s for $STEADY_HIGH_SECS s (commit time − due time; $fired of $moved_high fired)\",\"cmd\":\"UPDATE case_deadlines SET due_at = T2 + r / $STEADY_HIGH s for $moved_high pending seller_response deadlines, T2 = T + $(( DUE_HIGH - DUE_LOW )) s; pg_xact_commit_timestamp(event xid) − due_at\"}"
$PY "$REPORT" add "$RES" "{\"kind\":\"figure\",\"name\":\"rate_steady_high\",\"value\":$($PY -c "print($fired / max($span, 0.001))"),\"fired\":$fired,\"batch\":${FIRE_BATCH:-0},\"label\":\"sustained expiry rate at $STEADY_HIGH deadlines/s offered (fired ÷ seconds from the first due time to the last commit; $fired in ${span} s)\",\"cmd\":\"pg_xact_commit_timestamp of the events' transactions\"}"
log "steady $STEADY_HIGH/s: $fired of $moved_high fired in ${span} s; lag p50 $l50 ms p99 $l99 ms"
[ "$fired" -eq "$moved_high" ] || problem "steady $STEADY_HIGH/s: $fired of $moved_high deadlines fired"
fi # want sla
stop_arbiter

# ---------------------------------------------------------------- webhooks
# Issue 24: a receiver that hangs never slows case creation. The same wrk
# create run at the largest connection count: with no webhook
# subscription; with two platform-wide ones ("*" and "case.*") whose
# receiver reads each request and hangs 30 s (the sender gives up at 10 s
# and retries): the issue's figure; then with a third ("case.*") to a
# receiver that answers at once, creates paced at a quarter of the first
# run's rate, whose delivery latency meanwhile (arrival minus the event's
# at) shows whether the hanging ones hold it up; last,
# the control: all three to the healthy receiver, the cost of the fan-out
# and of sending without any hang. The receivers are Python on the same two
# cores. Reported, not asserted.
if want webhooks; then
	WHC=${CLIENTS##* }
	WH_PORTS=$OUT/wh_ports WH_LOG=$OUT/wh_healthy.log
	: >"$WH_LOG"
	$PY "$here/wh_receivers.py" "$WH_PORTS" "$WH_LOG" 30 & wh_pid=$!
	BG_PIDS+=("$wh_pid")
	for _ in $(seq 100); do [ -s "$WH_PORTS" ] && break; sleep 0.1; done
	read -r WH_HANG WH_OK <"$WH_PORTS" || { problem "the webhook receivers did not start"; exit 1; }
	ARBITER_WEBHOOK_ALLOW_HOSTS=127.0.0.1 start_arbiter
	$PY "$REPORT" wait-ready "$URL/readyz" 30 >/dev/null || { echo "bench: arbiter did not become ready" >&2; exit 1; }
	WH_PAIRS=${BENCH_WH_PAIRS:-3}
	[ "$SMOKE" = 1 ] && WH_PAIRS=${BENCH_WH_PAIRS:-1}
	log "webhooks: wrk create c=$WHC without, then with subscriptions to a hanging receiver, $WH_PAIRS times in turn"
	warm_wrk create wrk_create.lua
	WH_HUNG=()
	subscribe() {
		code=$(curl -s -o "$OUT/wh_sub.json" -w '%{http_code}' -X POST "$URL/v1/webhooks" \
			-H "Authorization: Bearer $FE_KEY" -H 'Content-Type: application/json' \
			-d "{\"url\":\"http://127.0.0.1:$1/hook\",\"event_types\":$2}")
		[ "$code" = 201 ] || problem "subscribing a webhook failed ($code): $(cat "$OUT/wh_sub.json")"
	}
	# Pairs, so that a drift of the shared machine falls on both sides
	# (report.py takes the median of the pairs' ratios). Each hanging run
	# has two new subscriptions, which start at the feed's head; the
	# ones before are deleted for the run without (pausing them would
	# queue that run's events on resume, a cost of the pause, not of
	# the hang).
	for ((i = 1; i <= WH_PAIRS; i++)); do
		for id in "${WH_HUNG[@]}"; do
			code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/v1/webhooks/$id" \
				-H "Authorization: Bearer $FE_KEY")
			[ "$code" = 204 ] || problem "deleting a webhook failed ($code)"
		done
		WH_HUNG=()
		run_wrk "wh_create_none$i" "$WHC" wrk_create.lua
		for types in '["*"]' '["case.*"]'; do
			subscribe "$WH_HANG" "$types"
			WH_HUNG+=("$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$OUT/wh_sub.json")")
		done
		# the hanging subscriptions' first sends are in flight before the run
		sleep 1
		run_wrk "wh_create_hanging$i" "$WHC" wrk_create.lua
	done
	subscribe "$WH_OK" '["case.*"]'
	sleep 1
	# paced at a quarter of the rate without subscriptions, well within
	# what one worker sends, so that the healthy one's latency shows a
	# hold-up rather than a queue
	wh_rate=$(( $($PY "$REPORT" peak "$RES" wh_create_none1) / 4 ))
	wh_t0=$(date +%s.%N)
	rc=0
	BENCH_THREADS=2 BENCH_LUA_DIR=$here BENCH_RUN_SALT="whmixed$RANDOM" \
		BENCH_PACED=wrk_create.lua BENCH_RATE=$wh_rate \
		wrk -t2 -c"$WHC" -d"${DUR}s" --timeout 10s -s "$here/wrk_paced.lua" "$URL" \
		>"$OUT/wrk_wh_mixed.out" 2>&1 || rc=$?
	wh_t1=$(date +%s.%N)
	$PY "$REPORT" paced "$RES" wh_mixed 25 "$wh_rate" "$WHC" "$OUT/wrk_wh_mixed.out" "$rc" \
		"BENCH_PACED=wrk_create.lua BENCH_RATE=$wh_rate wrk -t2 -c$WHC -d${DUR}s --timeout 10s -s tests/bench/wrk_paced.lua \$URL"
	log "webhooks: creates paced at $wh_rate/s beside the hanging subscriptions: $(grep -m1 'Requests/sec' "$OUT/wrk_wh_mixed.out" || echo failed)"
	sleep 2
	wh_pending=$(psql_u -At -c "SELECT count(*) FROM webhook_deliveries d JOIN webhook_subscriptions s
		ON s.id = d.sub_id WHERE s.url = 'http://127.0.0.1:$WH_OK/hook' AND d.state = 'pending'")
	# the control: the same three subscriptions, every one to the healthy
	# receiver, so that the cost of the fan-out and of sending is told
	# apart from the effect of the hang
	for id in "${WH_HUNG[@]}"; do
		code=$(curl -s -o "$OUT/wh_sub.json" -w '%{http_code}' -X PATCH "$URL/v1/webhooks/$id" \
			-H "Authorization: Bearer $FE_KEY" -H 'Content-Type: application/json' \
			-d "{\"url\":\"http://127.0.0.1:$WH_OK/hook\"}")
		[ "$code" = 200 ] || problem "re-pointing a webhook failed ($code): $(cat "$OUT/wh_sub.json")"
	done
	sleep 1
	run_wrk wh_create_healthy "$WHC" wrk_create.lua
	stop_arbiter
	# the fan-out's own database cost, with no worker sending: pgbench
	# running the service's create with the three subscriptions enabled,
	# then disabled
	run_pgb wh_pgb_subs "$WHC" prepared pgb_create.sql
	psql_a -c "UPDATE webhook_subscriptions SET enabled = false" >/dev/null
	run_pgb wh_pgb_none "$WHC" prepared pgb_create.sql
	$PY "$REPORT" webhooks "$RES" "$WH_LOG" "$wh_t0" "$wh_t1" "$wh_pending" \
		"wrk create c=$WHC (as above) without subscriptions, then with two new subscriptions (\"*\", \"case.*\") to a receiver that hangs 30 s, $WH_PAIRS times in turn (the figure: the median of the pairs' ratios), then with one more (\"case.*\") to a healthy one and creates paced at a quarter of the first rate, then all three to the healthy one (tests/bench/wh_receivers.py); healthy latency = arrival − the event's at, for events of the paced run" ||
		problem "the webhook figures could not be computed"
	log "webhooks: $(tail -1 "$RES" | cut -c1-200)"
	kill "$wh_pid" 2>/dev/null; wait "$wh_pid" 2>/dev/null || true
fi

# ---------------------------------------------------------------- shaped
# The production-shaped data set (issue 21), once, in its own database of
# the same cluster: its load time and shape, then every request
# statement's plan on it (tests/bench/plans.py; a plan over its bounds is a
# problem). Nothing is measured after this, so the cluster goes back to
# wal_level=minimal for the load.
if want shaped; then
	SN=${BENCH_SHAPED_CASES:-$( [ "$SMOKE" = 1 ] && echo 20000 || echo 5000000 )}
	log "shaped data: $SN cases in database arbiter_shaped"
	psql_a -c "ALTER SYSTEM SET wal_level = minimal" -c "ALTER SYSTEM SET max_wal_senders = 0" >/dev/null
	pg_restart
	psql_a -c "CREATE DATABASE arbiter_shaped OWNER arbiter_owner" >/dev/null
	ARBITER_MIGRATE_DATABASE_URL="host=$W/pg port=$PGPORT dbname=arbiter_shaped user=arbiter_owner" \
		ARBITER_RUNTIME_ROLE=arbiter "$BIN" migrate >>"$OUT/migrate.out"
	SAU="host=$W/pg port=$PGPORT dbname=arbiter_shaped user=postgres"
	TS0=$(date +%s)
	PSQL=$PSQL bash "$here/shaped.sh" "$SAU" "$SN" >"$OUT/shaped.out" 2>&1 || problem "shaped.sh failed: $(tail -3 "$OUT/shaped.out")"
	meta shaped_load_s "$(( $(date +%s) - TS0 ))"
	meta shaped_out "$OUT/shaped.out"
	meta shaped_df "$(df -h "$W" | awk 'NR == 2 {print $3 " used, " $4 " free on " $6}')"
	log "shaped: $(head -1 "$OUT/shaped.out")"
	PATH="$pgbin:$PATH" $PY "$here/plans.py" --db "$SAU" --out "$OUT/plans.md" 2>"$OUT/plans.err" ||
		problem "request plans on the shaped data: $(grep -c '^plans: FAIL' "$OUT/plans.err") over their bounds; $(grep -v '^plans: \(ok\|KNOWN\|FAIL\)' "$OUT/plans.err" | head -3 | tr '\n' ' ')"
	meta plans_md "$OUT/plans.md"
	log "$(tail -1 "$OUT/plans.err")"
fi

# ---------------------------------------------------------------- report
note "Data: $N refund/quality_defect cases in awaiting_seller (the shape POST /v1/cases stores, with its decision JSON), created over the last 3.5 days across $SHOPS shops and $BUYERS buyers, each with its open event (hash-chained with the schema's own digest) and its seller_response deadline (due in 1.5 to 5 days, so nothing fires during the runs). Bulk-loaded with tests/bench/load.sql (wal_level=minimal, secondary indexes and foreign keys rebuilt afterwards, VACUUM ANALYZE, restart with wal_level=replica); the load is not measured."
note "Create: wrk posts a new case per request (unique order id and Idempotency-Key, random shop, buyer and SKU) with the frontend key; what the service does per request (idempotency claim, buyer history, case_create, idempotency reply) is its business. pgbench runs case_create alone, one case per commit, with the JSON of a case created through the API at the start of the run."
note "Read by id: random loaded cases, agent key (no shop scope) vs case_get_row with scope NULL."
note "List: GET /v1/cases?shop_id=S&state=awaiting_seller with the seller key of shop S ($NSEL seller keys, one per shop, about $(( N / SHOPS )) cases each; default page of 50) vs the statement store_case_list() builds for it, LIMIT 51, -M extended (the service sends it unnamed)."
note "Transition: POST /v1/cases/{id}/actions {\"action\":\"note\"} with If-Match by the agent key, each wrk thread walking its own $A cases with versions read just before the run and tracked from each answer's ETag; pgbench runs the same case_get_row then case_apply (note event, no deadline change) on random cases of another slice."
note "CPU per request is arbiter's utime+stime (/proc/PID/stat) over the run divided by the requests; PostgreSQL's and wrk's CPU are not in it. Peak RSS is VmHWM, reset (clear_refs 5) before each run. Everything (PostgreSQL, pgbench or wrk, arbiter) shares the same $(nproc) cores."
note "Warm-up: before each workload's wrk runs, ${WARM} s of the same workload at ${CLIENTS##* } connections, not recorded, so that every run meets the service as it is once it has been up a while: its pool's connections open, their PostgreSQL backends past their first, cold executions (a first create on a fresh backend took 130 ms where the next took 6 ms). Each measured run, pgbench's and wrk's, starts right after a CHECKPOINT, so each pays the same full-page images in the WAL for the pages it touches first. pgbench starts its own connections cold in every run; over ${DUR} s that costs it about one slow transaction per client."
note "Ratio = arbiter req/s ÷ pgbench tx/s at the same concurrency (clients = connections); the peak table compares each side's best concurrency."
note "SLA: ready = SIGTERM, start, first 200 from /readyz (5 ms polls). Drain = $DRAIN loaded cases' seller_response deadlines moved by one UPDATE (while the service runs) to fall within one second $DRAIN_LEAD s ahead, reminders marked sent; counted from the audit trail once none is pending. Lag from the commit timestamps of the events' transactions (track_commit_timestamp=on) and from the events' at (the transaction's start, so it reads low). The pgbench expiry baselines (one expiry per commit at $EXPIRE_CLIENTS clients; the scheduler's batch shape, case_claim + case_expire for a batch of cases per commit, at $FIRE_WORKERS clients = FIRE_WORKERS, for batches of $BATCHES, $BATCH_DUR s each), each on its own slice of cases, count the expire events they wrote. Steady rates: the deadlines are moved to a whole second $(( HORIZON_S + 5 )) s ahead, past the scheduler's ${HORIZON_S} s horizon, so that they enter its wheel by time passing (as a deadline armed days before does); the drain likewise ($DRAIN_LEAD s ahead). The 10 k/s ratio compares the sustained rate with the batched baseline at the service's own batch size (FIRE_BATCH = ${FIRE_BATCH:-?})."
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
T_END=$(date +%s%N)
meta wall_s "$(( (T_END - T_START) / 1000000000 ))"
mkdir -p "$(dirname "$OUTFILE")"
rc=0
$PY "$REPORT" render "$RES" "$META" "$OUTFILE" || rc=$?
log "results written to $OUTFILE"
# growth.sh compares the records of several runs
[ -z "${BENCH_RESULTS_JSONL:-}" ] || cp "$RES" "$BENCH_RESULTS_JSONL"
[ "$rc" = 0 ] && [ "$PROBLEMS" = 0 ] || { echo "bench: FAILED (see Problems above)" >&2; exit 1; }
log "ok"
