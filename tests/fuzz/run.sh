#!/bin/sh
# Builds the libFuzzer harnesses in tests/fuzz/ with clang (ASan + UBSan) and
# runs each for SECONDS (default 60) from its seed corpus in
# tests/fuzz/corpus/<name>/. Prints executions and crashes per harness; exits
# non-zero if any harness crashed, leaked, timed out or failed to build.
#
#   usage: tests/fuzz/run.sh [SECONDS]        (FUZZ_CC=clang-14 to pick a compiler)
#          tests/fuzz/run.sh --runs N         N executions each instead (make fuzz-long)
#
# FUZZ_KEEP_CORPUS=1 merges what the run found into tests/fuzz/corpus/<name>/
# (libFuzzer -merge=1: only inputs that reach new coverage), so the next
# run, and CI's, start from it.
#
# New inputs libFuzzer finds go to build/fuzz/corpus/<name>/ (the seeds in the
# repository stay as they are); crashes to build/fuzz/artifacts/<name>/.
set -u

RUNS=""
if [ "${1:-}" = "--runs" ]; then
	RUNS=${2:-}
	SECONDS_EACH=0
	case $RUNS in
	'' | *[!0-9]*) echo "usage: $0 [SECONDS] | --runs N" >&2; exit 2 ;;
	esac
else
	SECONDS_EACH=${1:-60}
fi
case $SECONDS_EACH in
'' | *[!0-9]*) echo "usage: $0 [SECONDS] | --runs N" >&2; exit 2 ;;
esac
if [ -n "$RUNS" ]; then LIMIT="-runs=$RUNS"; WHAT="$RUNS executions"
else LIMIT="-max_total_time=$SECONDS_EACH"; WHAT="${SECONDS_EACH}s"; fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
OUT=build/fuzz
CC=${FUZZ_CC:-clang}
PGINC=$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
CFLAGS="-std=c11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -Iinclude -I$PGINC
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
  -Wall -Wextra -Wno-unused-parameter"

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found (make deps installs clang)" >&2
	exit 2
fi
mkdir -p "$OUT"

# The sources and libraries each harness needs, listed explicitly. Problems
# are filled by catalogue key (errmsg.c), so the codec and the policy need
# the compiled-in catalogues: make build generates build/gen/i18n_*.c.
MSGS="src/errmsg.c src/msgs.c src/i18n.c build/gen/i18n_en.c build/gen/i18n_zh_cn.c"
[ -f build/gen/i18n_en.c ] || make -s build >/dev/null || exit 2
sources() {
	case $1 in
	codec) echo "src/codec.c src/textbuf.c src/model.c src/timeutil.c src/policy.c src/casefsm.c src/workcal.c $MSGS" ;;
	router) echo "src/router.c" ;;
	policy) echo "src/policy.c src/model.c src/timeutil.c src/casefsm.c src/workcal.c $MSGS" ;;
	cursor) echo "src/cursor.c" ;;
	esac
}
libraries() {
	case $1 in
	codec | policy) echo "-ljansson -lm" ;;
	router) echo "" ;;
	cursor) echo "" ;;
	esac
}

NAMES="codec router policy cursor"
failed=0
summary=""

for name in $NAMES; do
	bin="$OUT/fuzz_$name"
	echo "fuzz: building $bin"
	# shellcheck disable=SC2086,SC2046
	if ! $CC $CFLAGS -DFUZZ_POLICY_PATH="\"$ROOT/deploy/policy/default.json\"" \
		-o "$bin" "tests/fuzz/fuzz_$name.c" $(sources "$name") $(libraries "$name"); then
		echo "fuzz: $name: build failed (a new dependency? add it to sources() in $0)" >&2
		summary="$summary
  $name: BUILD FAILED"
		failed=1
		continue
	fi
done
[ "$failed" = 0 ] || { echo "fuzz: build failed$summary" >&2; exit 1; }

for name in $NAMES; do
	bin="$OUT/fuzz_$name"
	work="$OUT/corpus/$name"
	art="$OUT/artifacts/$name"
	log="$OUT/fuzz_$name.log"
	mkdir -p "$work" "$art"
	rm -f "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*
	extra=""
	[ "$name" = policy ] && extra="deploy/policy"
	echo "fuzz: running $name for $WHAT"
	# shellcheck disable=SC2086
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		"$bin" "$LIMIT" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/" \
		"$work" "tests/fuzz/corpus/$name" $extra >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	crashes=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
		-o -name 'oom-*' \) | wc -l)
	if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
		crashes=1 # died without writing an artifact: still a failure
	fi
	line="$name: executions=${execs:-?} crashes=$crashes exit=$rc"
	echo "fuzz: $line"
	if [ "$crashes" -ne 0 ]; then
		failed=1
		echo "fuzz: $name failed; the end of $log:" >&2
		tail -n 40 "$log" >&2
		ls "$art" >&2
	fi
	if [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ] && [ "$crashes" -eq 0 ]; then
		before=$(find "tests/fuzz/corpus/$name" -type f | wc -l)
		"$bin" -merge=1 "tests/fuzz/corpus/$name" "$work" >>"$log" 2>&1
		after=$(find "tests/fuzz/corpus/$name" -type f | wc -l)
		line="$line corpus=$before->$after"
	fi
	summary="$summary
  $line"
done

echo "fuzz summary ($WHAT each):$summary"
exit $failed
