"""A strict parser of the Prometheus text exposition format, version 0.0.4.

Standard library only. Follows
https://prometheus.io/docs/instrumenting/exposition_formats/ (text format
details) and, where the page is silent, what the reference Go parser
(prometheus/common expfmt, as in `promtool check metrics`) accepts. It is
deliberately STRICTER than the Go parser in a few places the spec states as
rules but the Go parser does not enforce; each is marked "(stricter)" below.

    parse(text) -> {family_name: {"type": str, "help": str | None,
                                  "samples": [(sample_name, {label: value}, float)]}}

raises ParseError (a ValueError carrying .line, 1-based) on the first problem:

  - lines end with "\\n", including the last one; no "\\r"; text is UTF-8
  - metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*;
    label names starting "__" are reserved (stricter)
  - "# HELP name doc": at most one per name; in doc only \\\\ and \\n escapes
  - "# TYPE name type": type in counter|gauge|histogram|summary|untyped (a
    missing type is refused: stricter), at most one per name, and before the
    first sample of that name
  - samples: name, optional {label="value",...} (blanks allowed around tokens,
    one trailing comma allowed), value, optional int64 timestamp, then the end
    of the line. Leading blanks are ignored; trailing blanks are refused, as
    the Go parser refuses them after a value or a TYPE (the spec's prose says
    they are ignored: here the reference implementation wins)
  - label values: only \\\\ \\" \\n escapes; no label name twice in one sample
  - values: Go float syntax as expfmt takes it: decimal with optional exponent,
    [+-]Inf / Infinity, NaN (any case, no sign on NaN); no hex, no "_", no
    out-of-range literals such as 1e400
  - every line of a family forms one contiguous group (stricter: the spec's
    rule, not enforced by the Go parser)
  - the same series (name + label set) at most once (stricter)
  - counter samples are not negative or NaN (stricter)
  - a histogram family holds only x_bucket (with a numeric le), x_sum and
    x_count (no le), per label set: buckets in increasing le, cumulative
    (non-decreasing, stricter), one le="+Inf" bucket, x_count present and
    equal to it, x_sum present (stricter)
  - a summary holds x{quantile=q} (0 <= q <= 1, increasing), x_sum and x_count,
    both present per label set (stricter)

Helpers for tests: value(families, sample_name, **labels) -> float | None;
series(families, sample_name, **labels) -> [(labels, value)] whose labels
include the given ones. Labels named like Python keywords can be passed with
value(families, name, labels={...}).
"""

from __future__ import annotations

import math
import re

__all__ = ["ParseError", "parse", "value", "series", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4"

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL = re.compile(r"(?i:[+-]?inf(?:inity)?|nan)")
_INT = re.compile(r"[+-]?[0-9]+")
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
_BLANK = " \t"


class ParseError(ValueError):
    def __init__(self, line: int, msg: str):
        super().__init__(f"line {line}: {msg}")
        self.line = line
        self.msg = msg


def parse_float(s: str) -> float:
    """A sample value or le/quantile label value; ValueError if invalid."""
    if _SPECIAL.fullmatch(s):
        return float(s)  # Python takes the same spellings
    if not _FLOAT.fullmatch(s):
        raise ValueError(f"not a float: {s!r}")
    v = float(s)
    if math.isinf(v):
        raise ValueError(f"float out of range: {s!r}")
    return v


def _unescape(s: str, allowed: str, line: int, what: str) -> str:
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in allowed:
                nxt = s[i + 1] if i + 1 < len(s) else "end of line"
                raise ParseError(line, f"invalid escape sequence '\\{nxt}' in {what}")
            out.append("\n" if s[i + 1] == "n" else s[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _skip_blank(s: str, i: int) -> int:
    while i < len(s) and s[i] in _BLANK:
        i += 1
    return i


def _parse_labels(s: str, i: int, line: int) -> tuple[dict[str, str], int]:
    """s[i] == '{'. Returns the labels and the index after '}'."""
    labels: dict[str, str] = {}
    i = _skip_blank(s, i + 1)
    while True:
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = _LABEL_NAME.match(s, i)
        if not m:
            raise ParseError(line, f"invalid label name at column {i + 1}")
        name = m.group(0)
        if name.startswith("__"):
            raise ParseError(line, f"label name {name!r} is reserved (starts with __)")
        if name in labels:
            raise ParseError(line, f"duplicate label name {name!r}")
        i = _skip_blank(s, m.end())
        if i >= len(s) or s[i] != "=":
            raise ParseError(line, f"expected '=' after label name {name!r}")
        i = _skip_blank(s, i + 1)
        if i >= len(s) or s[i] != '"':
            raise ParseError(line, f"expected '\"' to open the value of label {name!r}")
        j = i + 1
        raw = []
        while True:
            if j >= len(s):
                raise ParseError(line, f"unterminated value of label {name!r}")
            c = s[j]
            if c == "\\":
                if j + 1 >= len(s):
                    raise ParseError(line, f"unterminated value of label {name!r}")
                raw.append(s[j:j + 2])
                j += 2
                continue
            if c == '"':
                break
            raw.append(c)
            j += 1
        labels[name] = _unescape("".join(raw), '\\"n', line, f"the value of label {name!r}")
        i = _skip_blank(s, j + 1)
        if i < len(s) and s[i] == ",":
            i = _skip_blank(s, i + 1)
        elif i >= len(s) or s[i] != "}":
            raise ParseError(line, "expected ',' or '}' after a label value")


class _Family:
    __slots__ = ("name", "type", "help", "samples", "closed", "typed_line", "series")

    def __init__(self, name: str):
        self.name = name
        self.type: str | None = None
        self.help: str | None = None
        self.samples: list[tuple[str, dict[str, str], float]] = []
        self.closed = False
        self.series: set = set()


def _belongs(fam: _Family, sample_name: str) -> bool:
    t = fam.type or "untyped"
    n = fam.name
    if t == "histogram":
        return sample_name in (n + "_bucket", n + "_sum", n + "_count")
    if t == "summary":
        return sample_name in (n, n + "_sum", n + "_count")
    return sample_name == n


def _check_histogram(fam: _Family, lines: dict) -> None:
    groups: dict = {}
    for (sname, labels, v), line in zip(fam.samples, lines[fam.name]):
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None, "line": line})
        if v < 0 or math.isnan(v):
            raise ParseError(line, f"{sname}: a histogram value must be >= 0, got {v}")
        if sname.endswith("_bucket"):
            if "le" not in labels:
                raise ParseError(line, f"{sname} has no 'le' label")
            try:
                le = parse_float(labels["le"])
            except ValueError:
                raise ParseError(line, f"{sname}: 'le' is not a float: {labels['le']!r}") from None
            if math.isnan(le):
                raise ParseError(line, f"{sname}: 'le' is NaN")
            if g["count"] is not None or g["sum"] is not None:
                raise ParseError(line, f"{sname}: bucket after the series' _sum/_count")
            if g["buckets"]:
                ple, pv = g["buckets"][-1]
                if not le > ple:
                    raise ParseError(line, f"{sname}: le={labels['le']} is not above the previous bucket's")
                if v < pv:
                    raise ParseError(line, f"{sname}: buckets are not cumulative ({v} < {pv})")
            g["buckets"].append((le, v))
        else:
            if "le" in labels:
                raise ParseError(line, f"{sname} must not carry an 'le' label")
            g["sum" if sname.endswith("_sum") else "count"] = v
    for rest, g in groups.items():
        where = f"{fam.name}{{{', '.join(f'{k}={x!r}' for k, x in rest)}}}"
        if not g["buckets"] or not math.isinf(g["buckets"][-1][0]):
            raise ParseError(g["line"], f"{where}: no le=\"+Inf\" bucket")
        if g["count"] is None:
            raise ParseError(g["line"], f"{where}: no _count sample")
        if g["sum"] is None:
            raise ParseError(g["line"], f"{where}: no _sum sample")
        if g["count"] != g["buckets"][-1][1]:
            raise ParseError(g["line"], f"{where}: _count {g['count']} != +Inf bucket {g['buckets'][-1][1]}")


def _check_summary(fam: _Family, lines: dict) -> None:
    groups: dict = {}
    for (sname, labels, v), line in zip(fam.samples, lines[fam.name]):
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "quantile"))
        g = groups.setdefault(rest, {"q": [], "sum": None, "count": None, "line": line})
        if sname == fam.name:
            if "quantile" not in labels:
                raise ParseError(line, f"{sname} has no 'quantile' label")
            try:
                q = parse_float(labels["quantile"])
            except ValueError:
                raise ParseError(line, f"{sname}: 'quantile' is not a float") from None
            if not 0 <= q <= 1:
                raise ParseError(line, f"{sname}: quantile {q} is outside [0, 1]")
            if g["q"] and not q > g["q"][-1]:
                raise ParseError(line, f"{sname}: quantiles are not increasing")
            g["q"].append(q)
        else:
            if "quantile" in labels:
                raise ParseError(line, f"{sname} must not carry a 'quantile' label")
            g["sum" if sname.endswith("_sum") else "count"] = v
    for rest, g in groups.items():
        if g["count"] is None or g["sum"] is None:
            raise ParseError(g["line"], f"{fam.name}{dict(rest)}: _sum and _count are required")


def parse(text: str | bytes) -> dict[str, dict]:
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParseError(text[: e.start].count(b"\n") + 1, "not valid UTF-8") from None
    if text == "":
        return {}
    if not text.endswith("\n"):
        raise ParseError(text.count("\n") + 1, "the last line does not end with a line feed")
    fams: dict[str, _Family] = {}
    lines: dict[str, list[int]] = {}
    current: _Family | None = None

    def switch(name: str, lineno: int) -> _Family:
        """Makes `name` the open group, closing the previous one."""
        nonlocal current
        if current is not None and current.name == name:
            return current
        if current is not None:
            current.closed = True
        fam = fams.get(name)
        if fam is None:
            fam = fams[name] = _Family(name)
            lines[name] = []
        elif fam.closed:
            raise ParseError(lineno, f"lines of metric {name!r} are not in one group")
        current = fam
        return fam

    for lineno, raw in enumerate(text[:-1].split("\n"), start=1):
        if "\r" in raw:
            raise ParseError(lineno, "carriage return in line (lines end with \\n only)")
        s = raw.lstrip(_BLANK)
        if not s:
            continue
        if s[0] == "#":
            body = s[1:].lstrip(_BLANK)
            parts = re.split(r"[ \t]+", body, maxsplit=1)
            kw = parts[0]
            if kw not in ("HELP", "TYPE"):
                continue  # an ordinary comment
            if len(parts) < 2 or not parts[1]:
                raise ParseError(lineno, f"{kw} without a metric name")
            m = _METRIC_NAME.match(parts[1])
            if not m:
                raise ParseError(lineno, f"invalid metric name in {kw} line")
            name = m.group(0)
            rest = parts[1][m.end():]
            if rest and rest[0] not in _BLANK:
                raise ParseError(lineno, f"invalid metric name in {kw} line")
            rest = rest.lstrip(_BLANK)
            fam = switch(name, lineno)
            if kw == "HELP":
                if fam.help is not None:
                    raise ParseError(lineno, f"second HELP line for {name!r}")
                fam.help = _unescape(rest, "\\n", lineno, "HELP text")
            else:
                if fam.type is not None:
                    raise ParseError(lineno, f"second TYPE line for {name!r}")
                if fam.samples:
                    raise ParseError(lineno, f"TYPE line for {name!r} after its samples")
                if rest not in _TYPES:
                    raise ParseError(lineno, f"unknown metric type {rest!r}")
                fam.type = rest
            continue

        m = _METRIC_NAME.match(s)
        if not m:
            raise ParseError(lineno, "invalid metric name")
        sname = m.group(0)
        i = _skip_blank(s, m.end())
        labels: dict[str, str] = {}
        if i < len(s) and s[i] == "{":
            labels, i = _parse_labels(s, i, lineno)
            i = _skip_blank(s, i)
        elif i == m.end() and i < len(s):
            raise ParseError(lineno, "invalid character in metric name")
        if s[-1] in _BLANK:
            raise ParseError(lineno, f"{sname}: blanks after the last token")
        tokens = [t for t in re.split(r"[ \t]+", s[i:]) if t]
        if not tokens:
            raise ParseError(lineno, f"{sname}: no value")
        if len(tokens) > 2:
            raise ParseError(lineno, f"{sname}: unexpected text after the timestamp")
        try:
            v = parse_float(tokens[0])
        except ValueError as e:
            raise ParseError(lineno, f"{sname}: {e}") from None
        if len(tokens) == 2:
            if not _INT.fullmatch(tokens[1]) or not -(2**63) <= int(tokens[1]) < 2**63:
                raise ParseError(lineno, f"{sname}: timestamp is not an int64: {tokens[1]!r}")

        # Which family? The open group if the name fits it, else a new
        # (untyped) family named after the sample.
        if current is not None and _belongs(current, sname):
            fam = current
        else:
            for suffix in ("_bucket", "_sum", "_count"):
                base = sname[: -len(suffix)] if sname.endswith(suffix) else None
                if base and base in fams and fams[base].type in ("histogram", "summary"):
                    raise ParseError(lineno, f"{sname}: sample of {fams[base].type} {base!r} outside its group")
            if sname in fams and fams[sname].type in ("histogram", "summary"):
                raise ParseError(lineno, f"{sname}: a {fams[sname].type} has no sample named like the family")
            fam = switch(sname, lineno)
            if not _belongs(fam, sname):
                raise ParseError(lineno, f"{sname}: not a sample of {fam.type} {fam.name!r}")
        key = (sname, tuple(sorted(labels.items())))
        if key in fam.series:
            raise ParseError(lineno, f"{sname}{labels}: duplicate series")
        fam.series.add(key)
        if fam.type == "counter" and (v < 0 or math.isnan(v)):
            raise ParseError(lineno, f"{sname}: a counter must be >= 0, got {tokens[0]}")
        fam.samples.append((sname, labels, v))
        lines[fam.name].append(lineno)

    out: dict[str, dict] = {}
    for name, fam in fams.items():
        if fam.type == "histogram":
            _check_histogram(fam, lines)
        elif fam.type == "summary":
            _check_summary(fam, lines)
        out[name] = {"type": fam.type or "untyped", "help": fam.help, "samples": fam.samples}
    return out


def series(families: dict, sample_name: str, labels: dict | None = None, **kw) -> list:
    """[(labels, value)] of every sample named sample_name whose labels include
    the given ones (labels dict and/or keyword arguments)."""
    want = dict(labels or {}, **kw)
    out = []
    for fam in families.values():
        for name, lab, v in fam["samples"]:
            if name == sample_name and all(lab.get(k) == x for k, x in want.items()):
                out.append((lab, v))
    return out


def value(families: dict, sample_name: str, labels: dict | None = None, **kw) -> float | None:
    """The value of the one sample named sample_name with exactly these labels,
    or None when there is none."""
    want = dict(labels or {}, **kw)
    for fam in families.values():
        for name, lab, v in fam["samples"]:
            if name == sample_name and lab == want:
                return v
    return None


if __name__ == "__main__":  # python3 promparse.py < metrics.txt
    import sys

    try:
        fams = parse(sys.stdin.buffer.read())
    except ParseError as e:
        print(f"invalid: {e}", file=sys.stderr)
        sys.exit(1)
    n = sum(len(f["samples"]) for f in fams.values())
    print(f"ok: {len(fams)} families, {n} samples")
