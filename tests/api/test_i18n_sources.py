"""Source checks of issue 25's "texts live in message catalogues": no
handler file (src/api_*.c, src/http.c, src/codec.c) gives a problem an
English sentence of its own; each problem and field error names a
catalogue key that both languages have, with exactly the placeholders the
key's text uses. Every catalogue key any source file names exists in both
catalogues (the completeness check of the catalogues themselves, missing
keys and differing placeholders, is tests/unit/test_i18n.c and the
server's start-up). Log calls are not problem calls, so log texts stay
free English. No server needed.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CATS = {lang: json.loads((REPO / "i18n" / f"{lang}.json").read_text("utf-8"))
        for lang in ("en", "zh-CN")}
KEY_RE = re.compile(r"^(detail|field)\.[a-z0-9_]+$")
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# the English-sentence APIs: a handler must not use them at all
LEGACY = {"ar_err_set", "ar_err_field"}
# keyed calls: the key is argument number KEYED[name] (0-based), name/value
# pairs follow it up to a NULL
KEYED = {"ar_err_setk": 3, "ar_err_fieldk": 2, "ar_err_vsetk": 3, "ar_err_vfieldk": 2,
         "problem": 3}
# a key passed through a variable: (file, variable) -> the function whose
# every returned string literal must then be a catalogue key
INDIRECT = {("codec.c", "why"): "url_problem"}
SENTENCE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")


def strip_comments(src: str) -> str:
    """src with comments blanked (string and char literals kept, so a "/*"
    inside a string is no comment)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_args(src: str, start: int) -> tuple[list[str], int]:
    """The top-level arguments of the call whose '(' is at start."""
    depth, i, args, cur = 0, start, [], []
    while i < len(src):
        c = src[i]
        if c in "\"'":
            j = i + 1
            while src[j] != c:
                j += 2 if src[j] == "\\" else 1
            cur.append(src[i:j + 1])
            i = j + 1
            continue
        if c in "([{":
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append("".join(cur).strip())
                return args, i
        elif c == "," and depth == 1:
            args.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    raise ValueError("unbalanced call")


def literals(expr: str) -> list[str]:
    """The string literals in expr, adjacent ones joined, escapes kept."""
    return ["".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(0)))
            for m in re.finditer(r'"(?:[^"\\]|\\.)*"(?:\s*"(?:[^"\\]|\\.)*")*', expr)]


def placeholders(key: str) -> set[str]:
    return set(PLACEHOLDER.findall(CATS["en"].get(key, "")))


def returned_literals(src: str, func: str) -> list[str]:
    m = re.search(r"\b" + func + r"\s*\([^;{]*\)\s*\{", src)
    assert m, f"{func} not found"
    depth, i = 0, m.end() - 1
    while True:
        depth += {"{": 1, "}": -1}.get(src[i], 0)
        if depth == 0:
            break
        i += 1
    body = src[m.end():i]
    return [lit for r in re.finditer(r"\breturn\b([^;]*);", body) for lit in literals(r.group(1))]


def check_source(name: str, src: str) -> list[str]:
    """The faults of one handler file's text, as readable lines."""
    src = strip_comments(src)
    faults = []
    line = lambda pos: src.count("\n", 0, pos) + 1
    for m in re.finditer(r"#\s*define\s+\w+[^\n]*\b(ar_err_\w+)", src):
        faults.append(f"{name}:{line(m.start())}: a macro hides {m.group(1)}")
    for m in re.finditer(r"(?:->|\.)(detail|message)\b\s*(?:\[[^\]]*\])?\s*=(?!=)"
                         r"|\b(?:snprintf|strcpy|strncpy|memcpy|sprintf|vsnprintf)\s*\(\s*"
                         r"[\w>.\-\[\]&]*(?:->|\.)(?:detail|message)\b", src):
        faults.append(f"{name}:{line(m.start())}: writes a problem text directly")
    for m in re.finditer(r"\b(ar_err_\w+|problem)\s*(?=\()", src):
        fn, at = m.group(1), m.end()
        if src[:m.start()].rstrip().endswith(("void", "*")):
            continue  # a declaration or definition
        args, _ = split_args(src, at)
        where = f"{name}:{line(m.start())}"
        if fn in LEGACY:
            faults.append(f"{where}: {fn} takes an English sentence; use {fn}k and a key")
            continue
        if fn not in KEYED:
            continue
        k = KEYED[fn]
        if len(args) <= k:
            faults.append(f"{where}: {fn} without a key")
            continue
        key_expr = args[k]
        keys = literals(key_expr)
        if fn in ("ar_err_vsetk", "ar_err_vfieldk"):
            # forwards its caller's key: only from a function that takes
            # (..., const char *key, ...) and lets the compiler demand the NULL
            if not re.search(r"const char \*" + re.escape(key_expr) +
                             r", \.\.\.\)\s*__attribute__\(\(sentinel\)\)", src):
                faults.append(f"{where}: {fn} forwards {key_expr!r}, not a sentinel function's key")
            continue
        if not keys:
            fn_ret = INDIRECT.get((name, key_expr))
            if not fn_ret:
                faults.append(f"{where}: key {key_expr!r} is not a string literal")
                continue
            keys = returned_literals(src, fn_ret)
            if not keys:
                faults.append(f"{where}: {fn_ret} returns no keys")
        rest = args[k + 1:]
        if not rest or rest[-1] != "NULL":
            faults.append(f"{where}: arguments do not end in NULL")
            continue
        pairs = rest[:-1]
        names = set()
        if len(pairs) % 2:
            faults.append(f"{where}: an argument name without a value")
        for i in range(0, len(pairs) - 1, 2):
            nm = literals(pairs[i])
            if len(nm) != 1 or not re.fullmatch(r"[a-z_]+", nm[0]):
                faults.append(f"{where}: argument name {pairs[i]!r} is not a literal name")
            else:
                names.add(nm[0])
            for v in literals(pairs[i + 1]):
                if SENTENCE.search(v):
                    faults.append(f"{where}: a sentence passed as a value: {v!r}")
        for key in keys:
            if not KEY_RE.match(key):
                faults.append(f"{where}: {key!r} is not a catalogue key")
            elif any(key not in c for c in CATS.values()):
                faults.append(f"{where}: {key!r} is missing from a catalogue")
            elif placeholders(key) != names:
                faults.append(f"{where}: {key!r} uses {sorted(placeholders(key))}, "
                              f"the call gives {sorted(names)}")
    return faults


HANDLERS = sorted(REPO.glob("src/api_*.c")) + [REPO / "src/http.c", REPO / "src/codec.c"]


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: p.name)
def test_handler_problems_name_catalogue_keys(path):
    faults = check_source(path.name, path.read_text("utf-8"))
    assert not faults, "\n".join(faults)


def test_every_key_a_source_names_is_in_both_catalogues():
    used = {}
    for path in sorted(REPO.glob("src/*.c")):
        for lit in literals(strip_comments(path.read_text("utf-8"))):
            if KEY_RE.match(lit):
                used.setdefault(lit, path.name)
    assert len(used) > 100, len(used)
    missing = [f"{k} ({f})" for k, f in used.items() if any(k not in c for c in CATS.values())]
    assert not missing, missing
    for k in used:
        assert placeholders(k) == set(PLACEHOLDER.findall(CATS["zh-CN"][k])), k


GOOD = '''
static void f(ar_err *err, int n)
{
	log_kv(LOG_WARN, "the stored case is unreadable", "id", id, NULL);
	fprintf(stderr, "must be a positive integer\\n");
	ar_err_fieldk(err, "/order/quantity", "field.int_range", "min", AR_INT(1),
		      "max", AR_INT(n), NULL);  /* a "comment, with quotes" */
	ar_err_setk(err, 404, "not-found", cond ? "detail.no_case" : "detail.no_key",
		    "id", id, NULL);
}
'''


@pytest.mark.parametrize("bad, why", [
    ('ar_err_field(err, "/x", "must be a positive integer");', "English sentence"),
    ('ar_err_set(err, 404, "not-found", "Not found", "no case");', "English sentence"),
    ('ar_err_fieldk(err, "/x", "must be a positive integer", NULL);', "not a catalogue key"),
    ('ar_err_fieldk(err, "/x", msg, NULL);', "not a string literal"),
    ('ar_err_fieldk(err, "/x", "field.no_such_key_here", NULL);', "missing from a catalogue"),
    ('ar_err_fieldk(err, "/x", "field.int_range", "min", AR_INT(1), NULL);', "uses"),
    ('ar_err_fieldk(err, "/x", "field.one_of", "list", "the value is wrong", NULL);',
     "sentence passed"),
    ('snprintf(err->detail, sizeof(err->detail), "no case");', "directly"),
    ('snprintf(err.fields[0].message, 10, "bad");', "directly"),
    ('#define OOPS ar_err_set\n', "macro"),
    ('ar_err_fieldk(err, "/x", "field.required");', "NULL"),
])
def test_the_check_catches_what_it_must(bad, why):
    """The checker itself: quiet on keyed calls and on log texts, loud on
    each way an English sentence could slip into a problem."""
    assert check_source("x.c", GOOD) == []
    faults = check_source("x.c", "static void g(void)\n{\n\t" + bad + "\n}\n")
    assert any(why in f for f in faults), faults
