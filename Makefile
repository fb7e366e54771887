# arbiter: build, private PostgreSQL, run, test.
# `make run` and `make test` are the two commands a newcomer needs; both
# install what is missing (make deps) and start the private cluster first.

CC      ?= cc
WARN     = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
INCLUDES = -D_GNU_SOURCE -Iinclude -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
LDLIBS   = -lmicrohttpd -ljansson -lpq -lcurl -lcrypto -lpthread -lm
VERSION := 0.1.0
COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DEFS     = -DARBITER_VERSION='"$(VERSION)"' -DARBITER_COMMIT='"$(COMMIT)"'

# Hardened by default (make hardening-check proves it on build/arbiter).
# CFLAGS, CPPFLAGS and LDFLAGS from the environment or the command line
# (a packager's dpkg-buildflags) come after ours, so theirs win where both
# set something; a packager's own _FORTIFY_SOURCE replaces ours rather than
# redefining it (a -Werror error).
OPT            = -O2 -g
HARDEN_CFLAGS  = -fstack-protector-strong -fPIE
HARDEN_CPPFLAGS = $(if $(findstring _FORTIFY_SOURCE,$(CPPFLAGS) $(CFLAGS)),,-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3)
HARDEN_LDFLAGS = -pie -Wl,-z,relro,-z,now
ALL_CFLAGS     = $(OPT) $(HARDEN_CFLAGS) $(CFLAGS)
ALL_CPPFLAGS   = $(INCLUDES) $(HARDEN_CPPFLAGS) $(CPPFLAGS)
ALL_LDFLAGS    = $(HARDEN_LDFLAGS) $(LDFLAGS)
FLAGS_LINE     = $(CC) $(WARN) $(ALL_CFLAGS) $(ALL_CPPFLAGS) $(ALL_LDFLAGS)

SRC      := $(wildcard src/*.c)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
BENCH_C  := $(wildcard tests/bench/*_bench.c)
MIGRATIONS := $(sort $(wildcard sql/*.sql))

# V=1 shows the full compiler lines
Q = $(if $(V),,@)

B  = build
BA = build/asan
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

PY     = /usr/bin/python3
DBCTL  = deploy/local/pgctl.sh
export ARBITER_POLICY ?= $(CURDIR)/deploy/policy/default.json

.PHONY: all deps hardening-check build run db db-stop migrate key test unit api-test ui-test webhook-kill-test asan asan-test \
        valgrind-test ha-test bench bench-growth bench-smoke bench-cold bench-stats plan-check bench-wheel profile fuzz fuzz-long lint clean
.DEFAULT_GOAL := all

all: build
build: $(B)/arbiter

# ---- dependencies (Debian 12, as root): install only what is absent ----
DEB_PKGS = build-essential pkg-config clang libclang-rt-14-dev libmicrohttpd-dev \
           libjansson-dev libpq-dev postgresql-15 postgresql-client-15 libcmocka-dev \
           libssl-dev libcurl4-openssl-dev python3-pytest python3-jsonschema python3-yaml python3-cryptography \
           curl wrk xxd valgrind \
           chromium systemd binutils prometheus docker-compose shellcheck yamllint \
           patroni etcd-server pgbouncer haproxy
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing" >&2; \
	  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >&2; \
	else echo "deps: all present" >&2; fi
	@command -v npm >/dev/null 2>&1 || { echo "deps: installing nodejs npm" >&2; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2; }
	@# the k8s schema check's validators (bundled JSON schemas, offline once installed)
	@bash deploy/check.sh --tools-present || { echo "deps: installing kubernetes-models (npm)" >&2; \
	  bash deploy/check.sh --install-tools >&2; }

# ---- compile ----
$(B)/gen/migrations.c: $(MIGRATIONS) deploy/local/embed.sh
	@mkdir -p $(@D)
	$(Q)sh deploy/local/embed.sh $(MIGRATIONS) > $@

# Objects are rebuilt when the flags change (a packager's, or ours).
$(B)/gen/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(FLAGS_LINE)' | cmp -s - $@ || echo '$(FLAGS_LINE)' > $@

$(B)/%.o: src/%.c $(wildcard include/arbiter/*.h) $(B)/gen/flags
	@mkdir -p $(@D)
	@echo '  CC      $<'
	$(Q)$(CC) $(WARN) $(ALL_CFLAGS) $(ALL_CPPFLAGS) $(DEFS) -c $< -o $@

# The commit is compiled into main.o: rebuild it when HEAD moves.
$(B)/gen/commit: FORCE
	@mkdir -p $(@D)
	@echo '$(COMMIT)' | cmp -s - $@ || echo '$(COMMIT)' > $@
$(B)/main.o $(BA)/main.o: $(B)/gen/commit
.PHONY: FORCE
FORCE:

$(B)/gen/ui.c: src/ui/index.html deploy/local/embed_blob.sh
	@mkdir -p $(@D)
	$(Q)sh deploy/local/embed_blob.sh ar_ui_index $< > $@

# The message catalogues (i18n/*.json), one blob per language.
$(B)/gen/i18n_en.c: i18n/en.json deploy/local/embed_blob.sh
	@mkdir -p $(@D)
	$(Q)sh deploy/local/embed_blob.sh ar_i18n_en $< > $@
$(B)/gen/i18n_zh_cn.c: i18n/zh-CN.json deploy/local/embed_blob.sh
	@mkdir -p $(@D)
	$(Q)sh deploy/local/embed_blob.sh ar_i18n_zh_cn $< > $@

# The contract, served as /openapi.json: YAML in the repo, JSON in the binary.
$(B)/openapi.json: openapi/arbiter.yaml openapi/tojson.py
	@mkdir -p $(@D)
	$(Q)$(PY) openapi/tojson.py $< $@
$(B)/gen/openapi.c: $(B)/openapi.json deploy/local/embed_blob.sh
	@mkdir -p $(@D)
	$(Q)sh deploy/local/embed_blob.sh ar_openapi_json $< > $@

$(B)/gen/%.o: $(B)/gen/%.c $(B)/gen/flags
	$(Q)$(CC) $(WARN) $(ALL_CFLAGS) $(ALL_CPPFLAGS) -c $< -o $@

GEN := migrations ui openapi i18n_en i18n_zh_cn
LIB_OBJ := $(patsubst src/%.c,$(B)/%.o,$(LIB_SRC)) $(patsubst %,$(B)/gen/%.o,$(GEN))

$(B)/arbiter: $(LIB_OBJ) $(B)/main.o
	@echo '  LD      $@'
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(@D)
	@echo '  LD      $@'
	$(Q)$(CC) $(WARN) $(ALL_CFLAGS) $(ALL_CPPFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS) -lcmocka

# sanitizer build: same sources, separate tree
$(BA)/%.o: src/%.c $(wildcard include/arbiter/*.h)
	@mkdir -p $(@D)
	@echo '  CC asan $<'
	$(Q)$(CC) $(WARN) $(ASAN_FLAGS) $(INCLUDES) $(DEFS) -c $< -o $@
$(BA)/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(@D)
	$(Q)$(CC) $(WARN) $(ASAN_FLAGS) $(INCLUDES) -c $< -o $@
ASAN_OBJ := $(patsubst src/%.c,$(BA)/%.o,$(LIB_SRC)) $(patsubst %,$(BA)/gen/%.o,$(GEN))
$(BA)/arbiter: $(ASAN_OBJ) $(BA)/main.o
	@echo '  LD asan $@'
	$(Q)$(CC) $(ASAN_FLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)
$(BA)/tests/%: tests/unit/%.c $(ASAN_OBJ)
	@mkdir -p $(@D)
	@echo '  LD asan $@'
	$(Q)$(CC) $(WARN) $(ASAN_FLAGS) $(INCLUDES) -o $@ $< $(ASAN_OBJ) $(LDLIBS) -lcmocka

UNIT_BIN      := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
UNIT_BIN_ASAN := $(patsubst tests/unit/%.c,$(BA)/tests/%,$(UNIT_SRC))

# ---- private PostgreSQL (skipped when ARBITER_DATABASE_URL is set) ----
db:
	@if [ -z "$$ARBITER_DATABASE_URL" ]; then bash $(DBCTL) start; fi
db-stop:
	@bash $(DBCTL) stop

# The private cluster migrates as arbiter_owner and serves as arbiter, which
# owns nothing (README, Security); with ARBITER_DATABASE_URL set, set
# ARBITER_MIGRATE_DATABASE_URL and ARBITER_RUNTIME_ROLE for the same split.
PRIVATE_MIGRATE = if [ -z "$$ARBITER_DATABASE_URL" ]; then \
	  export ARBITER_MIGRATE_DATABASE_URL="$$(bash $(DBCTL) owner-url)" ARBITER_RUNTIME_ROLE=arbiter; fi
migrate: deps build db
	@$(PRIVATE_MIGRATE); ARBITER_DATABASE_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) url)}" $(B)/arbiter migrate

run: deps build db
	@$(PRIVATE_MIGRATE); export ARBITER_DATABASE_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) url)}"; \
	$(B)/arbiter migrate && unset ARBITER_MIGRATE_DATABASE_URL && exec $(B)/arbiter serve

# An API key against the private cluster: make key ROLE=frontend [SHOP=S-1] [NAME=me]
ROLE ?= frontend
key: deps build db
	@$(PRIVATE_MIGRATE); export ARBITER_DATABASE_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) url)}"; \
	  $(B)/arbiter migrate >&2 && $(B)/arbiter keys create --role $(ROLE) --name "$${NAME:-$(ROLE)-$$(date +%s)}" $(if $(SHOP),--shop $(SHOP))

# ---- tests ----
unit: $(UNIT_BIN)
	@sh tests/run_unit.sh $(UNIT_BIN)

api-test: build db
	@ARBITER_BIN=$(CURDIR)/$(B)/arbiter ARBITER_ADMIN_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) admin-url)}" \
	  $(PY) -m pytest -q -p no:cacheprovider tests/api

# The kill -9 webhook test at the issue's size: 10 000 deliveries pending
# (make test runs it with 2 000; about 70 s on this loaded 2-core machine).
webhook-kill-test: build db
	@ARBITER_BIN=$(CURDIR)/$(B)/arbiter ARBITER_ADMIN_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) admin-url)}" \
	  ARBITER_TEST_WEBHOOK_KILL_DELIVERIES=$${ARBITER_TEST_WEBHOOK_KILL_DELIVERIES:-10000} \
	  $(PY) -m pytest -q -s -p no:cacheprovider tests/api/test_webhooks.py -k kill9

ui-test: build db
	@ARBITER_BIN=$(CURDIR)/$(B)/arbiter ARBITER_ADMIN_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) admin-url)}" \
	  sh tests/ui/run.sh

# Two PostgreSQL failovers under load (tests/ha): its own 3-node etcd and
# Patroni cluster on free loopback ports, started and torn down by the test
# (no private cluster needed); the whole run is bounded to 5 minutes.
ha-test: deps build
	@ARBITER_BIN=$(CURDIR)/$(B)/arbiter timeout -k 10 420 \
	  $(PY) -m pytest -q -s -p no:cacheprovider tests/ha

# Static checks: the build is hardened, the OpenAPI contract lints clean and
# types every event's data (a generated TypeScript client compiles a typed
# program), the deployment files and the alert rules hold together.
lint: hardening-check
	@sh openapi/lint.sh
	@sh tests/contract/check.sh
	@bash deploy/check.sh
	@bash deploy/prometheus/check.sh

# Fails unless build/arbiter is PIE with full RELRO, BIND_NOW, FORTIFY'd
# calls and the stack protector (deploy/hardening-check.sh says which).
hardening-check: build
	@bash deploy/hardening-check.sh $(B)/arbiter

# Each harness starts from tests/fuzz/corpus, which fuzz-long's 10 M
# executions per harness grew, so make test's runs replay that corpus and
# then search FUZZ_SECONDS more each.
FUZZ_SECONDS ?= 30
fuzz:
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)
# Each harness for FUZZ_RUNS executions (10 M), what it finds merged into
# tests/fuzz/corpus (commit it); tens of minutes, not part of make test.
FUZZ_RUNS ?= 10000000
fuzz-long:
	@FUZZ_KEEP_CORPUS=1 sh tests/fuzz/run.sh --runs $(FUZZ_RUNS)

# The black-box suite with every server under valgrind's memcheck: an
# invalid read or a definite leak makes the server exit non-zero on SIGTERM,
# which fails the test that stops it. The tests that start servers of their
# own (kills, restarts, replicas) are left to asan-test; VALGRIND_ALL=1 runs
# them here too (tests/api/conftest.py).
valgrind-test: build db
	@ARBITER_VALGRIND=1 ARBITER_VALGRIND_ALL=$(VALGRIND_ALL) ARBITER_BIN=$(CURDIR)/$(B)/arbiter \
	  ARBITER_ADMIN_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) admin-url)}" \
	  $(PY) -m pytest -q -p no:cacheprovider tests/api

bench: deps build
	@bash tests/bench/run.sh
# The growth curve: create/read/list/transition at 20 k, 1 M and 5 M cases
# (BENCH_GROWTH), written to tests/bench/GROWTH.md (25 minutes or more).
bench-growth: deps build
	@bash tests/bench/growth.sh
# The request statements' plans on PLAN_CASES production-shaped cases
# (tests/bench/shaped.sh) in a throwaway database: no Seq Scan of a big
# table, rows and buffers under bounds that do not grow with the data
# (tests/bench/plans.py; about 2 minutes at 200 k, most of it the load).
PLAN_CASES ?= 200000
plan-check: build db
	@ARBITER_BIN=$(CURDIR)/$(B)/arbiter ARBITER_ADMIN_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) admin-url)}" \
	  PATH="$$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin):$$PATH" \
	  $(PY) tests/bench/plans.py --make $(PLAN_CASES) --out $(B)/bench/PLANS.md
# What the first requests after a restart cost: ready time, then 16 creates
# at once and 16 more, over 3 restarts (a throwaway database; seconds).
bench-cold: deps build db
	@ARBITER_ADMIN_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) admin-url)}" \
	  $(PY) tests/bench/cold_start.py $(CURDIR)/$(B)/arbiter
# What the stats triggers cost, in alternating rounds on one server: the
# counters on the create path (026/027) and the update trigger's WHEN on
# the note path (027's against 030's).
bench-stats: deps build db
	@export ARBITER_BIN=$(CURDIR)/$(B)/arbiter \
	  ARBITER_ADMIN_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) admin-url)}"; \
	  $(PY) tests/bench/stats_cost.py && $(PY) tests/bench/stats_when.py
bench-smoke: deps build $(B)/bench/tw_bench
	@$(B)/bench/tw_bench 100000 > /dev/null
	@BENCH_SMOKE=1 bash tests/bench/run.sh
# The timer wheel against a binary heap at 1 M and 10 M timers, written to
# tests/bench/WHEEL.md (about a minute; no database).
$(B)/bench/tw_bench: $(BENCH_C) src/timerwheel.c include/arbiter/timerwheel.h
	@mkdir -p $(@D)
	@echo '  LD      $@'
	$(Q)$(CC) $(WARN) -O2 $(INCLUDES) -o $@ $(BENCH_C) src/timerwheel.c
bench-wheel: $(B)/bench/tw_bench
	@{ echo "# Timer wheel against a binary heap"; echo; \
	  echo "$$(date -u '+%F %H:%M UTC'), commit $(COMMIT)$$(git diff --quiet HEAD -- src include tests/bench 2>/dev/null || echo ' (working tree modified)'), $$(nproc) cores, $$(free -g | awk '/^Mem/ {print $$2}') GiB; \
	  command: \`make bench-wheel\`"; echo; \
	  $(B)/bench/tw_bench; } > $(B)/bench/WHEEL.md
	@cp $(B)/bench/WHEEL.md tests/bench/WHEEL.md && cat tests/bench/WHEEL.md
# Instructions per request (callgrind), written to build/profile/PROFILE.md.
profile: deps build db
	@bash tests/bench/callgrind.sh

# Everything CI runs: every step runs even when one fails, each prints its
# own summary, and the last line counts the steps.
TEST_STEPS = unit api-test ui-test lint asan-test valgrind-test ha-test fuzz bench-smoke plan-check
test: deps build db
	@pass=0; fail=0; failed=""; \
	for t in $(TEST_STEPS); do \
	  echo "==> make $$t"; \
	  if $(MAKE) --no-print-directory $$t; then pass=$$((pass + 1)); \
	  else fail=$$((fail + 1)); failed="$$failed $$t"; fi; \
	done; \
	[ -z "$$failed" ] || echo "failed steps:$$failed"; \
	echo "make test: $$pass passed, $$fail failed"; \
	[ $$fail -eq 0 ]

asan: $(BA)/arbiter $(UNIT_BIN_ASAN)
asan-test: deps asan db
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  sh tests/run_unit.sh $(UNIT_BIN_ASAN)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ARBITER_BIN=$(CURDIR)/$(BA)/arbiter ARBITER_ADMIN_URL="$${ARBITER_DATABASE_URL:-$$(bash $(DBCTL) admin-url)}" \
	  $(PY) -m pytest -q -p no:cacheprovider tests/api

clean:
	rm -rf $(B)
