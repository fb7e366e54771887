"""Self-test of promparse, the strict Prometheus text-format (0.0.4) parser.

Feeds it valid and invalid exposition texts and checks the verdict (and, for
invalid ones, the line it blames). When the reference Go parser is at hand
(`promtool check metrics`: $PROMTOOL, promtool on PATH, or the copy that
`deploy/prometheus/check.sh --fetch-promtool` extracts from Debian's package), the same inputs are cross-checked against it:
every text promparse accepts must parse there too, and every syntax error must
be refused there too. Rules where promparse is deliberately stricter than the
Go parser are marked go=False. Needs no server and no database.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import pytest

import promparse as pp

# --------------------------------------------------------------------------
# Valid texts
# --------------------------------------------------------------------------

SPEC_EXAMPLE = r"""# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.05"} 3272
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.9"} 9001
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
"""

# The shape arbiter's /metrics produces (abridged from a real rendering).
ARBITER_SAMPLE = """# HELP arbiter_build_info Build of the running arbiter; the value is always 1.
# TYPE arbiter_build_info gauge
arbiter_build_info{version="0.1.0 \\"rc\\"\\\\1\\nx",commit="abc1234"} 1
# HELP process_start_time_seconds Start time of the process since the Unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1700000000.250
# HELP arbiter_http_requests_total HTTP requests answered, by route template, method and status code.
# TYPE arbiter_http_requests_total counter
arbiter_http_requests_total{route="/v1/cases/{id}",method="GET",status="200"} 2
arbiter_http_requests_total{route="unmatched",method="other",status="other"} 1
# HELP arbiter_http_request_duration_seconds Time from the first byte of a request to its response being queued, by route template.
# TYPE arbiter_http_request_duration_seconds histogram
arbiter_http_request_duration_seconds_bucket{route="/v1/cases/{id}",le="0.0005"} 0
arbiter_http_request_duration_seconds_bucket{route="/v1/cases/{id}",le="0.005"} 2
arbiter_http_request_duration_seconds_bucket{route="/v1/cases/{id}",le="+Inf"} 2
arbiter_http_request_duration_seconds_sum{route="/v1/cases/{id}"} 0.008000000
arbiter_http_request_duration_seconds_count{route="/v1/cases/{id}"} 2
arbiter_http_request_duration_seconds_bucket{route="unmatched",le="0.0005"} 1
arbiter_http_request_duration_seconds_bucket{route="unmatched",le="0.005"} 1
arbiter_http_request_duration_seconds_bucket{route="unmatched",le="+Inf"} 1
arbiter_http_request_duration_seconds_sum{route="unmatched"} 0.000100000
arbiter_http_request_duration_seconds_count{route="unmatched"} 1
# HELP arbiter_cases Cases in the database by state and kind (refreshed periodically).
# TYPE arbiter_cases gauge
# HELP arbiter_sla_oldest_overdue_seconds Age of the oldest deadline that is due and not yet fired (0 when none).
# TYPE arbiter_sla_oldest_overdue_seconds gauge
arbiter_sla_oldest_overdue_seconds 0.000000
"""


def test_spec_example():
    f = pp.parse(SPEC_EXAMPLE)
    assert f["http_requests_total"]["type"] == "counter"
    assert f["http_requests_total"]["help"] == "The total number of HTTP requests."
    assert pp.value(f, "http_requests_total", method="post", code="400") == 3
    assert pp.value(f, "msdos_file_access_time_seconds",
                    path="C:\\DIR\\FILE.TXT", error='Cannot find file:\n"FILE.TXT"') == 1.458255915e9
    assert f["metric_without_timestamp_and_labels"]["type"] == "untyped"
    assert pp.value(f, "something_weird", problem="division by zero") == math.inf
    h = f["http_request_duration_seconds"]
    assert h["type"] == "histogram"
    assert [s[0] for s in h["samples"]].count("http_request_duration_seconds_bucket") == 6
    assert pp.value(f, "http_request_duration_seconds_bucket", le="+Inf") == 144320
    assert pp.value(f, "rpc_duration_seconds_sum") == 1.7560473e7
    assert len(pp.series(f, "rpc_duration_seconds")) == 5


def test_arbiter_shape():
    f = pp.parse(ARBITER_SAMPLE.encode())
    assert pp.value(f, "arbiter_build_info", version='0.1.0 "rc"\\1\nx', commit="abc1234") == 1
    assert pp.value(f, "arbiter_http_requests_total",
                    route="/v1/cases/{id}", method="GET", status="200") == 2
    assert pp.value(f, "arbiter_http_request_duration_seconds_count", route="unmatched") == 1
    assert f["arbiter_cases"] == {"type": "gauge", "help": f["arbiter_cases"]["help"], "samples": []}
    assert pp.value(f, "arbiter_http_requests_total", route="nope") is None
    assert len(pp.series(f, "arbiter_http_request_duration_seconds_bucket", route="unmatched")) == 3


GOOD = {
    "empty": "",
    "blank lines and comments": "\n# just a comment\n#\n# TYPE a gauge\n\na 1\n\n",
    "leading blanks, blanks between tokens": "  \t# TYPE a gauge\n\t a \t 1 \t 5\n",
    "HELP keeps trailing blanks": "# HELP a doc  \na 1\n",
    "blanks inside braces, trailing comma": 'a { x = "1" , y="2", } 1\n',
    "empty braces": "a{} 1\n",
    "no blank after braces": 'a{x="1"}1\n',
    "HELP without text": "# HELP a\n# TYPE a gauge\na 1\n",
    "HELP escapes": "# HELP a back\\\\slash\\nnewline \"quotes\" kept\na 1\n",
    "hash HELP without blank": "#HELP a doc\n# TYPE a gauge\na 1\n",
    "TYPE before HELP": "# TYPE a gauge\n# HELP a doc\na 1\n",
    "special floats": "a{k=\"1\"} +Inf\na{k=\"2\"} -inf\na{k=\"3\"} NaN\na{k=\"4\"} Infinity\n",
    "decimal forms": "a{k=\"1\"} .5\na{k=\"2\"} 5.\na{k=\"3\"} +1.5E-3\na{k=\"4\"} -0\n",
    "negative timestamp": "a 1 -5\n",
    "same name in other labels": 'a{x="1"} 1\na{x="2"} 1\n',
    "unicode label value": 'a{who="买家 ✓"} 1\n',
    "colon in metric name": "job:rate5m 1\n",
    "histogram, several series": (
        "# TYPE h histogram\n"
        'h_bucket{r="a",le="1"} 1\nh_bucket{r="a",le="+Inf"} 2\nh_sum{r="a"} 3\nh_count{r="a"} 2\n'
        'h_bucket{r="b",le="1"} 0\nh_bucket{r="b",le="+Inf"} 0\nh_sum{r="b"} 0\nh_count{r="b"} 0\n'),
    "histogram, le in exponent form": (
        "# TYPE h histogram\n"
        'h_bucket{le="1e-3"} 0\nh_bucket{le="0.01"} 1\nh_bucket{le="+Inf"} 1\nh_sum 0.005\nh_count 1\n'),
    "TYPE line with no samples": "# HELP a doc\n# TYPE a counter\n# TYPE b gauge\nb 0\n",
}


@pytest.mark.parametrize("text", list(GOOD.values()), ids=list(GOOD.keys()))
def test_good(text):
    pp.parse(text)


def test_good_values():
    f = pp.parse(GOOD["special floats"])
    assert pp.value(f, "a", k="2") == -math.inf and math.isnan(pp.value(f, "a", k="3"))
    assert pp.value(pp.parse(GOOD["decimal forms"]), "a", k="3") == 0.0015
    f = pp.parse(GOOD["HELP escapes"])
    assert f["a"]["help"] == 'back\\slash\nnewline "quotes" kept'
    assert f["a"]["type"] == "untyped"
    f = pp.parse(GOOD["blanks inside braces, trailing comma"])
    assert f["a"]["samples"] == [("a", {"x": "1", "y": "2"}, 1.0)]
    assert pp.parse("") == {}
    assert pp.parse(GOOD["HELP keeps trailing blanks"])["a"]["help"] == "doc  "


# --------------------------------------------------------------------------
# Invalid texts: (text, line blamed, refused by the Go parser too)
# --------------------------------------------------------------------------

BAD = {
    "no final newline": ("# TYPE a gauge\na 1", 2, True),
    "carriage return": ("a 1\r\n", 1, True),
    "invalid metric name": ("1a 1\n", 1, True),
    "dash in metric name": ("a-b 1\n", 1, True),
    "invalid label name": ('a{1x="1"} 1\n', 1, True),
    "reserved label name": ('a{__name="1"} 1\n', 1, False),
    "duplicate label": ('a{x="1",x="2"} 1\n', 1, True),
    "bad escape in label value": ('a{x="\\t"} 1\n', 1, True),
    "backslash at end of label value": ('a{x="\\"} 1\n', 1, True),
    "unquoted label value": ("a{x=1} 1\n", 1, True),
    "unterminated label value": ('a{x="1} 1\n', 1, True),
    "missing comma between labels": ('a{x="1" y="2"} 1\n', 1, True),
    "lone comma in braces": ("a{,} 1\n", 1, True),
    "bad escape in HELP": ("# HELP a x\\ty\na 1\n", 1, True),
    "no value": ("a\n", 1, True),
    "value not a float": ("a 1x\n", 1, True),
    "hex float": ("a 0x1p-2\n", 1, True),
    "underscore in float": ("a 1_000\n", 1, True),
    "float out of range": ("a 1e400\n", 1, True),
    "signed NaN": ("a -nan\n", 1, True),
    "timestamp not an integer": ("a 1 1.5\n", 1, True),
    "timestamp out of range": ("a 1 99999999999999999999\n", 1, True),
    "text after timestamp": ("a 1 2 3\n", 1, True),
    "unknown type": ("# TYPE a countr\na 1\n", 1, True),
    "type with extra word": ("# TYPE a counter extra\na 1\n", 1, True),
    "TYPE without type": ("# TYPE a\na 1\n", 1, False),
    "trailing blank after value": ("a 1 \n", 1, True),
    "trailing tab after timestamp": ('a{x="1"} 1 5\t\n', 1, True),
    "trailing blank after type": ("# TYPE a gauge \na 1\n", 1, True),
    "second TYPE": ("# TYPE a gauge\n# TYPE a gauge\na 1\n", 2, True),
    "TYPE after samples": ("a 1\n# TYPE a gauge\n", 2, True),
    "second HELP": ("# HELP a x\n# HELP a y\na 1\n", 2, True),
    "family not grouped": ("# TYPE a gauge\na 1\nb 1\na{x=\"1\"} 2\n", 4, False),
    "HELP after its group": ("a 1\nb 1\n# HELP a late\n", 3, False),
    "duplicate series": ("a 1\na 2\n", 2, False),
    "duplicate series, labels reordered": ('a{x="1",y="2"} 1\na{y="2",x="1"} 1\n', 2, False),
    "negative counter": ("# TYPE a_total counter\na_total -1\n", 2, False),
    "NaN counter": ("# TYPE a_total counter\na_total NaN\n", 2, False),
    "histogram without +Inf": ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", 2, False),
    "histogram not cumulative": (
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", 3, False),
    "histogram count differs from +Inf": (
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", 2, False),
    "histogram buckets out of order": (
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n", 3, False),
    "histogram duplicate le": (
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n", 3, False),
    "histogram bucket without le": ("# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n", 2, False),
    "histogram le not a float": ("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", 2, True),
    "histogram without _count": ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n", 2, False),
    "histogram without _sum": ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", 2, False),
    "histogram le on _count": (
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count{le=\"+Inf\"} 1\n", 4, False),
    "histogram sample named like the family": ("# TYPE h histogram\nh 1\n", 2, False),
    "histogram sample outside its group": (
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\nb 1\nh_sum{x=\"1\"} 1\n", 6, False),
    "histogram bucket after _count": (
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\nh_bucket{le=\"5\"} 1\n", 5, False),
    "summary quantile out of range": (
        "# TYPE s summary\ns{quantile=\"1.5\"} 1\ns_sum 1\ns_count 1\n", 2, False),
    "summary quantile not a float": ("# TYPE s summary\ns{quantile=\"x\"} 1\n", 2, True),
    "invalid UTF-8": (b"a{x=\"\xff\"} 1\n", 1, True),
}


@pytest.mark.parametrize("case", list(BAD.values()), ids=list(BAD.keys()))
def test_bad(case):
    text, line, _ = case
    with pytest.raises(pp.ParseError) as ei:
        pp.parse(text)
    assert ei.value.line == line, str(ei.value)


def test_value_helpers():
    f = pp.parse('a{x="1",y="2"} 5\na{x="1"} 6\n')
    assert pp.value(f, "a", x="1") == 6            # exact label set
    assert pp.value(f, "a", labels={"x": "1", "y": "2"}) == 5
    assert pp.value(f, "a", x="2") is None
    assert sorted(v for _, v in pp.series(f, "a", x="1")) == [5, 6]


def test_parse_float_matches_spelling_rules():
    for ok, want in (("1", 1.0), ("-2.5e3", -2500.0), ("+Inf", math.inf), ("inf", math.inf)):
        assert pp.parse_float(ok) == want
    for bad in ("", " 1", "1 ", "0x10", "1_0", "--1", "1e", "e1", ".", "+nan", "infinit"):
        with pytest.raises(ValueError):
            pp.parse_float(bad)


# --------------------------------------------------------------------------
# Cross-check with the reference Go parser, when available
# --------------------------------------------------------------------------

def _promtool():
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                         "arbiter", "promtool", "promtool")  # deploy/prometheus/check.sh --fetch-promtool
    p = os.environ.get("PROMTOOL") or shutil.which("promtool") or (cache if os.access(cache, os.X_OK) else None)
    if not p:
        pytest.fail("promtool not found: make deps installs it (Debian's prometheus); or set PROMTOOL")
    return p


def _go_accepts(promtool: str, text) -> bool:
    data = text if isinstance(text, bytes) else text.encode()
    cp = subprocess.run([promtool, "check", "metrics"], input=data, capture_output=True, timeout=30)
    # 0: clean; 3: lint remarks only (e.g. no HELP); 1: parse error.
    if cp.returncode not in (0, 1, 3):
        raise AssertionError(f"promtool exited {cp.returncode}: {cp.stderr!r}")
    if cp.returncode == 1:
        assert b"parsing error" in cp.stdout + cp.stderr, cp.stdout + cp.stderr
    return cp.returncode != 1


def test_go_parser_agrees_on_good():
    promtool = _promtool()
    for name, text in list(GOOD.items()) + [("spec", SPEC_EXAMPLE), ("arbiter", ARBITER_SAMPLE)]:
        assert _go_accepts(promtool, text), name


def test_go_parser_agrees_on_syntax_errors():
    promtool = _promtool()
    for name, (text, _, go) in BAD.items():
        if go:
            assert not _go_accepts(promtool, text), name
