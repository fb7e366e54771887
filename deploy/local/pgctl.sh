#!/usr/bin/env bash
# The private PostgreSQL 15 cluster behind `make run` and `make test`.
#
#   pgctl.sh start      init (once) and start the cluster, create role+db "arbiter"
#   pgctl.sh stop       stop it (data stays)
#   pgctl.sh status     exit 0 when running
#   pgctl.sh url        libpq connection string for the service (role arbiter, owns nothing)
#   pgctl.sh owner-url  connection string for migrations (role arbiter_owner, owns the schema)
#   pgctl.sh admin-url  connection string for the superuser (tests, tampering)
#   pgctl.sh dir        where the cluster lives
#
# The server must run as the `postgres` system user (initdb refuses root).
# It lives in ./var/pg when that user can reach it; a checkout under /root
# cannot be reached, so the cluster then lives in /var/tmp/arbiter-<hash>/pg
# and ./var/pg.location remembers where. ARBITER_PG_DIR overrides both
# (tests use it for throwaway clusters).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
var="$repo/var"
pgbin=${ARBITER_PGBIN:-/usr/lib/postgresql/15/bin}
pguser=postgres

# From /: the postgres user may not be allowed into the caller's directory.
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u "$pguser" -- "$@"); else "$@"; fi; }

cluster_dir() {
	if [ -n "${ARBITER_PG_DIR:-}" ]; then echo "$ARBITER_PG_DIR"; return; fi
	if [ -f "$var/pg.location" ]; then cat "$var/pg.location"; return; fi
	mkdir -p "$var"
	local d="$var/pg"
	mkdir -p "$d"
	if [ "$(id -u)" = 0 ]; then
		chown "$pguser": "$d"
		if ! runuser -u "$pguser" -- test -w "$d" 2>/dev/null; then
			rmdir "$d" 2>/dev/null || true
			d="/var/tmp/arbiter-$(printf '%s' "$repo" | sha1sum | cut -c1-12)/pg"
			mkdir -p "$d"
			chown "$pguser": "$d" "$(dirname "$d")"
		fi
	fi
	echo "$d" > "$var/pg.location"
	echo "$d"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ports below the kernel's ephemeral range (32768+), where no client socket
# can be holding one that a connect probe reports free.
PORT_LO=25432
PORT_HI=25631

cluster_port() {
	local d=$1 from=${2:-$PORT_LO} p
	if [ -f "$d/port" ]; then cat "$d/port"; return; fi
	for p in $(seq "$from" "$PORT_HI"); do
		if ! port_in_use "$p" && [ ! -e "$d/../.s.PGSQL.$p" ]; then
			echo "$p" > "$d/port"; echo "$p"; return
		fi
	done
	echo "pgctl: no free port in $PORT_LO-$PORT_HI" >&2; exit 1
}

running() { as_pg "$pgbin/pg_ctl" -D "$1/data" status >/dev/null 2>&1; }

psql_admin() {
	local d=$1; shift
	"$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$d" -p "$(cat "$d/port")" -U postgres -d postgres "$@"
}

start() {
	local d port
	[ -x "$pgbin/initdb" ] || { echo "pgctl: PostgreSQL 15 server not found in $pgbin (run make deps)" >&2; exit 1; }
	d=$(cluster_dir)
	mkdir -p "$d"
	[ "$(id -u)" = 0 ] && chown "$pguser": "$d"
	port=$(cluster_port "$d")
	if [ ! -f "$d/data/PG_VERSION" ]; then
		echo "pgctl: creating cluster in $d (port $port)" >&2
		as_pg "$pgbin/initdb" -D "$d/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1 \
			|| { cat "$d/initdb.log" >&2; exit 1; }
		cat >>"$d/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$d'
max_connections = 300
shared_buffers = 256MB
logging_collector = off
CONF
	fi
	if ! running "$d"; then
		local tries=0
		# 9>&-: the server must not inherit (and hold forever) the start lock
		until as_pg "$pgbin/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 start >/dev/null 9>&-; do
			# another cluster took the port between our check and the bind
			tries=$((tries + 1))
			if [ $tries -ge 5 ] || ! tail -20 "$d/server.log" | grep -q "could not bind"; then
				tail -20 "$d/server.log" >&2
				exit 1
			fi
			rm -f "$d/port"
			port=$(cluster_port "$d" $((port + 1)))
			sed -i "s/^port = .*/port = $port/" "$d/data/postgresql.conf"
		done
	fi
	# Two roles (issue 18): arbiter_owner owns the schema and runs the
	# migrations; arbiter, the service's login, owns nothing. A database
	# from before the split is handed to the owner.
	psql_admin "$d" <<'SQL'
SELECT 'CREATE ROLE arbiter LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'arbiter')\gexec
SELECT 'CREATE ROLE arbiter_owner LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'arbiter_owner')\gexec
SELECT 'CREATE DATABASE arbiter OWNER arbiter_owner' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'arbiter')\gexec
SELECT 'ALTER DATABASE arbiter OWNER TO arbiter_owner' FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = 'arbiter' AND r.rolname = 'arbiter'\gexec
SQL
	psql_admin "$d" -d arbiter <<'SQL'
SELECT 'REASSIGN OWNED BY arbiter TO arbiter_owner' WHERE EXISTS (SELECT 1 FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname = 'case_events' AND r.rolname = 'arbiter')\gexec
SQL
}

stop() {
	local d
	d=$(cluster_dir)
	if [ -f "$d/data/PG_VERSION" ] && running "$d"; then
		as_pg "$pgbin/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null
	fi
}

case "${1:-}" in
start)
	# One start at a time on this machine, so two runs never pick one port.
	exec 9>/tmp/arbiter-pgctl.lock
	flock -w 120 9 || true
	start ;;
stop) stop ;;
status) d=$(cluster_dir); running "$d" ;;
dir) cluster_dir ;;
url) d=$(cluster_dir); echo "host=$d port=$(cluster_port "$d") dbname=arbiter user=arbiter" ;;
owner-url) d=$(cluster_dir); echo "host=$d port=$(cluster_port "$d") dbname=arbiter user=arbiter_owner" ;;
admin-url) d=$(cluster_dir); echo "host=$d port=$(cluster_port "$d") dbname=postgres user=postgres" ;;
*) echo "usage: $0 start|stop|status|url|owner-url|admin-url|dir" >&2; exit 2 ;;
esac
