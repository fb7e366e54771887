#!/usr/bin/env bash
# Fails unless an ELF binary carries the hardening make build gives it:
# PIE (ELF type DYN and DF_1_PIE), full RELRO (GNU_RELRO + BIND_NOW), FORTIFY
# (__*_chk imports) and the stack protector (__stack_chk_fail).
#   deploy/hardening-check.sh build/arbiter
set -uo pipefail  # no -e: a failing grep is a failed check, not an exit

bin=${1:?usage: deploy/hardening-check.sh BINARY}
command -v readelf >/dev/null || { echo "FAIL hardening: readelf not installed (binutils, make deps)"; exit 1; }
[ -f "$bin" ] || { echo "FAIL hardening: $bin does not exist"; exit 1; }

header=$(readelf -h -W "$bin")
segments=$(readelf -l -W "$bin")
dynamic=$(readelf -d -W "$bin")
symbols=$(readelf --dyn-syms -W "$bin")

pass=0
fail=0
check() { # name, detail, condition status
	if [ "$3" -eq 0 ]; then
		echo "PASS hardening.$1: $2"; pass=$((pass + 1))
	else
		echo "FAIL hardening.$1: $2"; fail=$((fail + 1))
	fi
}

grep -Eq 'Type:[[:space:]]+DYN' <<<"$header" && grep -Eq 'FLAGS_1.*PIE' <<<"$dynamic"
check pie "ELF type DYN with DF_1_PIE (-fPIE -pie)" $?
grep -q 'GNU_RELRO' <<<"$segments"
check relro "GNU_RELRO segment (-Wl,-z,relro)" $?
grep -Eq '\(BIND_NOW\)|FLAGS.*\bNOW\b' <<<"$dynamic"
check bind-now "BIND_NOW (-Wl,-z,now: the GOT is read-only after start)" $?
chk=$(grep -Eo '__[a-z0-9_]+_chk' <<<"$symbols" | grep -v '^__stack_chk' | sort -u | tr '\n' ' ' || true)
[ -n "$chk" ]
check fortify "FORTIFY'd calls: ${chk:-none (-D_FORTIFY_SOURCE=3 with -O2)}" $?
grep -q '__stack_chk_fail' <<<"$symbols"
check stack-protector "__stack_chk_fail imported (-fstack-protector-strong)" $?

echo "hardening-check: $pass passed, $fail failed ($bin)"
[ "$fail" -eq 0 ]
