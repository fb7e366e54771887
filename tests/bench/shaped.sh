#!/usr/bin/env bash
# Loads the production-shaped data set (tests/bench/shaped.sql, issue 21)
# into a migrated, empty arbiter database and prints its shape.
#
#   shaped.sh ADMIN_CONNINFO N [SEED]
#
# ADMIN_CONNINFO: a superuser conninfo of that database (the load runs with
# session_replication_role = replica). N cases (5 M for make bench, 200 k
# for make plan-check). Secondary indexes and foreign keys of the three
# case tables are dropped for the load and rebuilt afterwards (two sessions),
# then the derived rows (the text_shop_days summary, the hot SKU's flag) are
# written and everything is analysed. The cluster's wal_level decides
# whether the inserts skip the WAL (tests/bench/run.sh sets minimal for its
# load; make db's cluster is replica). Environment: SHAPED_FE_KEY (actor id
# of the creates, default "shaped"), SHAPED_POLICY_VERSION, SHAPED_T0 (epoch
# seconds of "now"; default the database's now).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: shaped.sh ADMIN_CONNINFO N [SEED]" >&2; exit 2; }
AU=$1 N=$2 SEED=${3:-21}
PSQL=${PSQL:-$(command -v psql)}
FE=${SHAPED_FE_KEY:-shaped}
PV=${SHAPED_POLICY_VERSION:-2026.2-default}
q() { "$PSQL" -X -q -v ON_ERROR_STOP=1 "$AU" "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=${SHAPED_T0:-$(q -At -c "SELECT floor(extract(epoch FROM now()))::bigint")}
TABLES="'cases','case_events','case_deadlines','text_shop_days'"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ "$(q -At -c "SELECT count(*) FROM cases")" = 0 ] || { echo "shaped.sh: cases is not empty" >&2; exit 2; }
t_start=$(ms)
q -At -c "SELECT indexdef || ';' FROM pg_indexes i WHERE schemaname = 'public'
	AND tablename IN ($TABLES) AND NOT EXISTS (SELECT 1 FROM pg_constraint c
	WHERE c.conname = i.indexname AND c.contype IN ('p', 'u', 'x'))" >"$tmp/indexes.sql"
q -At -c "SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s;', conrelid::regclass, conname,
	pg_get_constraintdef(oid)) FROM pg_constraint WHERE contype = 'f' AND confrelid = 'cases'::regclass" \
	>"$tmp/fkeys.sql"
q -At -c "SELECT format('DROP INDEX %I;', indexname) FROM pg_indexes i WHERE schemaname = 'public'
	AND tablename IN ($TABLES) AND NOT EXISTS (SELECT 1 FROM pg_constraint c
	WHERE c.conname = i.indexname AND c.contype IN ('p', 'u', 'x'))
	UNION ALL SELECT format('ALTER TABLE %s DROP CONSTRAINT %I;', conrelid::regclass, conname)
	FROM pg_constraint WHERE contype = 'f' AND confrelid = 'cases'::regclass" | q

# The three tables load in parallel, each in one transaction that
# truncates it first, so that with wal_level=minimal the rows skip the WAL.
load_part() {
	q -c "BEGIN" -c "SET session_replication_role = replica" -c "TRUNCATE $2" \
		-v part="$1" -v lo=1 -v hi="$N" -v n="$N" -v seed="$SEED" -v t0="$T0" \
		-v fe_key="$FE" -v pv="$PV" -f "$here/shaped.sql" -c "COMMIT"
}
load_part cases cases & p1=$!
load_part events case_events & p2=$!
load_part deadlines case_deadlines & p3=$!
wait $p1; wait $p2; wait $p3
t_rows=$(ms)

awk 'NR % 2 == 1' "$tmp/indexes.sql" >"$tmp/indexes.1.sql"
awk 'NR % 2 == 0' "$tmp/indexes.sql" >"$tmp/indexes.2.sql"
q -c "SET maintenance_work_mem = '512MB'" -f "$tmp/indexes.1.sql" & i1=$!
q -c "SET maintenance_work_mem = '512MB'" -f "$tmp/indexes.2.sql" & i2=$!
wait $i1; wait $i2
q -f "$tmp/fkeys.sql"
t_idx=$(ms)

# what the creates would have written besides the rows: the (text, shop,
# day) summary the same-text risk signal reads, the hot SKU's flag, and
# the stats counters (sql/026; the load ran without their triggers)
q -c "INSERT INTO text_shop_days (description_hash, shop_id, day)
	SELECT DISTINCT description_hash, shop_id, (created_at AT TIME ZONE 'UTC')::date FROM cases
	 WHERE created_at > to_timestamp($T0) - interval '31 days'
	ON CONFLICT DO NOTHING" \
  -c "INSERT INTO sku_flags (shop_id, sku, flagged_at, cases)
	VALUES ('1000000', 'SKU-1', to_timestamp($T0) - interval '30 days', 5)" \
  -c "SELECT arbiter_stats_backfill()"
q -c "VACUUM ANALYZE cases" -c "VACUUM ANALYZE case_events" -c "VACUUM ANALYZE case_deadlines" \
  -c "VACUUM ANALYZE text_shop_days" -c "VACUUM ANALYZE sku_flags" -c "VACUUM ANALYZE stats_counts"
t_end=$(ms)

echo "shaped: $N cases (seed $SEED): rows $(( t_rows - t_start )) ms, indexes and keys $(( t_idx - t_rows )) ms, summary and analyse $(( t_end - t_idx )) ms, total $(( t_end - t_start )) ms"
q -At -F' | ' -c "
	SELECT 'cases', count(*)::text FROM cases
	UNION ALL SELECT 'open (awaiting_seller)', count(*)::text FROM cases WHERE state = 'awaiting_seller'
	UNION ALL SELECT 'armed deadlines', count(*)::text FROM case_deadlines
	UNION ALL SELECT 'events', count(*)::text FROM case_events
	UNION ALL SELECT 'shops', count(DISTINCT shop_id)::text FROM cases
	UNION ALL SELECT 'buyers', count(DISTINCT buyer_id)::text FROM cases
	UNION ALL SELECT 'distinct descriptions', count(DISTINCT description_hash)::text FROM cases
	UNION ALL SELECT 'top shop 1000000', count(*)::text FROM cases WHERE shop_id = '1000000'
	UNION ALL SELECT 'top buyer 50000001', count(*)::text FROM cases WHERE buyer_id = '50000001'
	UNION ALL SELECT 'hot SKU (1000000, SKU-1)', count(*)::text FROM cases WHERE shop_id = '1000000' AND sku = 'SKU-1'
	UNION ALL SELECT 'commonest text ' || (SELECT description FROM cases GROUP BY 1 ORDER BY count(*) DESC LIMIT 1),
	             (SELECT count(*) FROM cases GROUP BY description ORDER BY count(*) DESC LIMIT 1)::text
	UNION ALL SELECT 'text_shop_days rows', count(*)::text FROM text_shop_days
	UNION ALL SELECT 'stats_counts rows', count(*)::text FROM stats_counts
	UNION ALL SELECT 'database size', pg_size_pretty(pg_database_size(current_database()))"
