#!/usr/bin/env bash
# Checks of the monitoring files: deploy/prometheus/alerts.yml and
# deploy/grafana/arbiter.json, against what the exporter (src/metrics.c)
# really renders.
#
#   deploy/prometheus/check.sh                   run every check (exit 1 if one fails)
#   deploy/prometheus/check.sh --fetch-promtool  download Debian's prometheus package
#                                                (apt-get download, nothing installed) and
#                                                keep only its promtool in the cache dir
#
# Checks:
#   - the exporter's text: a tiny C program records one sample of everything
#     with src/metrics.c and renders; tests/api/promparse.py must accept it
#     (and `promtool check metrics` when present). Its metric and label names
#     are the vocabulary the next checks hold the rules and panels to.
#   - alerts.yml: YAML structure (groups, unique CamelCase alert names,
#     for:, severity label, summary/description annotations, templates);
#     every expression through a PromQL linter (balanced brackets, known
#     functions, durations, known metrics, known labels in matchers and in
#     by/without/on); the required alerts exist.
#   - with promtool ($PROMTOOL, PATH, or the cache of --fetch-promtool):
#     `promtool check rules`, and `promtool test rules` with unit tests of
#     every alert (firing and not firing, labels, rendered annotations).
#   - arbiter.json: Grafana dashboard structure (schemaVersion, unique ids,
#     24-column grid without overlaps, rows, datasource variable, targets with
#     unique refIds, variables defined), every target through the linter, the
#     required panels exist; with promtool, every target parsed by the real
#     PromQL parser (as recording rules).
#   - the linter and the structure checks refuse deliberately broken inputs.
#
# One line per check (PASS/FAIL/SKIP), then "prometheus-check: N passed, N failed";
# with CI=true every SKIP counts as failed.
# Needs /usr/bin/python3 with python3-yaml, cc, libjansson-dev (make deps).
set -euo pipefail
cd "$(dirname "$0")/../.."

cache=${XDG_CACHE_HOME:-$HOME/.cache}/arbiter/promtool
if [ "${1:-}" = "--fetch-promtool" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download prometheus)
	dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
	mkdir -p "$cache"
	cp "$tmp/x/usr/bin/promtool" "$cache/promtool"
	"$cache/promtool" --version | head -1
	echo "promtool: $cache/promtool"
	exit 0
fi
if [ -z "${PROMTOOL:-}" ]; then
	if command -v promtool >/dev/null 2>&1; then
		PROMTOOL=$(command -v promtool)
	elif [ -x "$cache/promtool" ]; then
		PROMTOOL="$cache/promtool"
	fi
fi
export PROMTOOL="${PROMTOOL:-}"
exec /usr/bin/python3 - "$@" <<'PY'
import json, os, re, subprocess, sys, tempfile, traceback

import yaml

sys.path.insert(0, "tests/api")
import promparse  # noqa: E402

ALERTS = "deploy/prometheus/alerts.yml"
DASH = "deploy/grafana/arbiter.json"
PROMTOOL = os.environ.get("PROMTOOL") or None
TMP = tempfile.mkdtemp(prefix="arbiter-promcheck-")
results = []


class Skip(Exception):
    pass


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append(("PASS", name, ""))
        except Skip as e:
            results.append(("SKIP", name, str(e)))
        except AssertionError as e:
            results.append(("FAIL", name, str(e) or "assertion failed"))
        except Exception:
            results.append(("FAIL", name, traceback.format_exc(limit=3)))
        return fn
    return wrap


def need_promtool():
    if not PROMTOOL:
        raise Skip("promtool not found (set PROMTOOL or run check.sh --fetch-promtool)")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


# ---------------------------------------------------------------------------
# The exporter's vocabulary
# ---------------------------------------------------------------------------

DUMP_C = r'''
#include <stdio.h>
#include <stdlib.h>
#include "arbiter/metrics.h"
#include "arbiter/policy.h"
int main(void)
{
	int64_t c[FSM_STATE__COUNT][AR_KIND__COUNT] = { { 1 } };
	size_t len;
	char *t;
	metrics_init("0.0.0", "check", 1700000000.0);
	metrics_http(0, "/v1/cases/{id}", M_GET, 200, 0.004);
	metrics_http(METRICS_ROUTE_UNMATCHED, "unmatched", M_OTHER, 418, 0.0001);
	metrics_set_cases(c);
	metrics_case_opened(AR_KIND_REFUND, POLICY_OUTCOME_AUTO_APPROVE);
	metrics_transition(FSM_ACTION_ACCEPT, FSM_ROLE_SELLER);
	metrics_sla_pending(3);
	metrics_sla_fired(FSM_DEADLINE_SELLER_RESPONSE, 0.3);
	metrics_sla_breach(FSM_DEADLINE_ARBITRATION);
	metrics_sla_oldest_overdue(2.5);
	metrics_calendar_days_left(25);
	metrics_refund("auto_approve", "CNY", 12900, true);
	metrics_refund("Not A Word", "cny", 1, false);
	metrics_db_pool(4, 1, 0);
	metrics_db_query(0.002, true);
	t = metrics_render(&len);
	if (!t || fwrite(t, 1, len, stdout) != len)
		return 1;
	free(t);
	return 0;
}
'''

KNOWN = {}      # sample name -> set of label names (the exporter's)
EXPORT_TEXT = None


@check("exporter renders text promparse accepts")
def _():
    global EXPORT_TEXT
    src = os.path.join(TMP, "dump.c")
    exe = os.path.join(TMP, "dump")
    with open(src, "w") as f:
        f.write(DUMP_C)
    cc = os.environ.get("CC", "cc")
    # problems are filled by catalogue key (errmsg.c): the compiled-in
    # catalogues come from make build (lint depends on it)
    srcs = ["src/metrics.c", "src/textbuf.c", "src/model.c", "src/timeutil.c", "src/casefsm.c", "src/router.c", "src/policy.c", "src/workcal.c",
            "src/errmsg.c", "src/msgs.c", "src/i18n.c", "build/gen/i18n_en.c", "build/gen/i18n_zh_cn.c"]
    cp = run([cc, "-std=c11", "-D_GNU_SOURCE", "-Iinclude", "-O0", "-o", exe, src] + srcs
             + ["-ljansson", "-lm", "-lpthread"])
    assert cp.returncode == 0, f"cannot build the exporter sample:\n{cp.stderr[-2000:]}"
    cp = run([exe])
    assert cp.returncode == 0, f"sample program failed: {cp.stderr}"
    EXPORT_TEXT = cp.stdout
    fams = promparse.parse(EXPORT_TEXT)
    for fam in fams.values():
        for name, labels, _ in fam["samples"]:
            KNOWN.setdefault(name, set()).update(labels)
    for fname, fam in fams.items():
        assert fam["samples"], f"family {fname} has no sample: the sample program must record one"
        assert fam["help"], f"family {fname} has no HELP"
    # Every histogram family's parts are known by their sample names.
    assert "arbiter_sla_firing_lag_seconds_bucket" in KNOWN
    # Prometheus writes up{job, instance} for every target it scrapes.
    KNOWN.setdefault("up", set())


@check("promtool check metrics on the exporter's text")
def _():
    need_promtool()
    assert EXPORT_TEXT is not None, "no exporter text"
    cp = run([PROMTOOL, "check", "metrics"], input=EXPORT_TEXT)
    assert cp.returncode == 0, f"promtool check metrics: rc={cp.returncode}\n{cp.stdout}{cp.stderr}"


# ---------------------------------------------------------------------------
# A small PromQL linter
# ---------------------------------------------------------------------------

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "count_over_time", "day_of_month", "day_of_week", "days_in_month", "delta", "deriv",
    "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "max_over_time",
    "min_over_time", "minute", "month", "predict_linear", "present_over_time", "quantile_over_time",
    "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "time", "timestamp", "vector", "year",
}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OPERATORS = {"and", "or", "unless", "bool", "offset", "atan2"}
TARGET_LABELS = {"job", "instance"}  # added by the scrape
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d"}

TOKEN = re.compile(r'''
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
  | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:[smhdwy]|ms)?(?:\d+(?:[smhdwy]|ms))*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]])
''', re.X)
DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")


def lint(expr):
    """Problems of one PromQL expression (a list of strings; empty when fine)."""
    problems = []
    toks = []
    i = 0
    while i < len(expr):
        m = TOKEN.match(expr, i)
        if not m:
            return [f"unexpected character {expr[i]!r} at {i}"]
        i = m.end()
        if m.lastgroup != "ws":
            toks.append((m.lastgroup, m.group(0)))
    stack = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for kind, t in toks:
        if kind == "op" and t in "([{":
            stack.append(t)
        elif kind == "op" and t in ")]}":
            if not stack or stack.pop() != pairs[t]:
                return [f"unbalanced {t!r}"]
    if stack:
        return [f"unclosed {stack[-1]!r}"]

    metrics_used = []
    grouping_labels = []
    n = len(toks)
    k = 0
    while k < n:
        kind, t = toks[k]
        nxt = toks[k + 1][1] if k + 1 < n else None
        if kind == "op" and t == "[":
            j = k + 1
            body = ""
            while toks[j][1] != "]":
                body += GRAFANA_RANGES.get(toks[j][1], toks[j][1])
                j += 1
            rng = body.split(":")  # subquery [range:step]
            if not all(DURATION.fullmatch(r) for r in rng if r) or not rng[0]:
                problems.append(f"bad range [{body}]")
            k = j + 1
            continue
        if kind == "var":
            if t not in GRAFANA_RANGES:
                problems.append(f"variable {t} outside a string or range")
            k += 1
            continue
        if kind != "ident":
            k += 1
            continue
        if t in GROUPING:
            if nxt != "(":
                if t in ("group_left", "group_right"):
                    k += 1
                    continue
                problems.append(f"{t} without a label list")
                k += 1
                continue
            j = k + 2
            while toks[j][1] != ")":
                if toks[j][0] == "ident":
                    grouping_labels.append((t, toks[j][1]))
                elif toks[j][1] != ",":
                    problems.append(f"bad label list after {t}")
                j += 1
            k = j + 1
            continue
        if t in OPERATORS or (t in AGGREGATIONS and nxt in ("(", "by", "without")):
            k += 1
            continue
        if nxt == "(":
            if t not in FUNCTIONS and t not in AGGREGATIONS:
                problems.append(f"unknown function {t}()")
            k += 1
            continue
        # a metric name
        if t not in KNOWN:
            problems.append(f"unknown metric {t}")
            labels_ok = None
        else:
            labels_ok = KNOWN[t] | TARGET_LABELS
            metrics_used.append(t)
        k += 1
        if k < n and toks[k][1] == "{":
            j = k + 1
            while toks[j][1] != "}":
                if toks[j][1] == ",":
                    j += 1
                    continue
                lab = toks[j][1]
                op = toks[j + 1][1] if j + 1 < n else None
                val = toks[j + 2] if j + 2 < n else (None, None)
                if toks[j][0] != "ident" or op not in ("=", "!=", "=~", "!~") or val[0] != "str":
                    problems.append(f"bad matcher in {t}{{...}}")
                    break
                if labels_ok is not None and lab not in labels_ok:
                    problems.append(f"{t} has no label {lab!r}")
                j += 3
            k = j + 1
    avail = set(TARGET_LABELS)
    for m in metrics_used:
        avail |= KNOWN[m]
    for how, lab in grouping_labels:
        if lab not in avail:
            problems.append(f"{how} ({lab}): no metric in the expression has label {lab!r}")
    if not metrics_used and not problems:
        problems.append("no metric referenced")
    return problems


@check("PromQL linter refuses broken expressions")
def _():
    assert KNOWN, "no exporter vocabulary"
    good = [
        'sum by (route, status) (rate(arbiter_http_requests_total{job=~"$job",status=~"5.."}[$__rate_interval]))',
        'histogram_quantile(0.99, sum by (le) (rate(arbiter_sla_firing_lag_seconds_bucket[5m]))) > 1',
        'max(arbiter_build_info) * on (instance) group_left () process_start_time_seconds',
    ]
    bad = [
        'sum(rate(arbiter_http_request_total[5m]))',                 # misspelt metric
        'sum(rate(arbiter_http_requests_total{code="500"}[5m]))',    # unknown label
        'sum by (code) (rate(arbiter_http_requests_total[5m]))',     # unknown grouping label
        'sum(rate(arbiter_http_requests_total[5m])',                 # unbalanced
        'sum(rat(arbiter_http_requests_total[5m]))',                 # unknown function
        'rate(arbiter_http_requests_total[5 minutes])',              # bad range
        'arbiter_cases{state="closed"',                              # unclosed
        'arbiter_cases{state=closed}',                               # unquoted value
        '1 + 1',                                                     # no metric
    ]
    for e in good:
        assert not lint(e), f"linter refused a good expression: {e}: {lint(e)}"
    for e in bad:
        assert lint(e), f"linter accepted a bad expression: {e}"


# ---------------------------------------------------------------------------
# alerts.yml
# ---------------------------------------------------------------------------

RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
RUNBOOK = "deploy/runbook.md"
RUNBOOK_URL = re.compile(r"https://\S+/deploy/runbook\.md#([a-z0-9-]+)")


def runbook_sections():
    """{anchor: text} of deploy/runbook.md's ## sections (GitHub's slugs)."""
    out, cur = {}, None
    with open(RUNBOOK) as f:
        for line in f:
            if line.startswith("## "):
                cur = re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
                out[cur] = ""
            elif cur:
                out[cur] += line
    return out
SEVERITIES = {"page", "ticket"}
PROM_DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")


def alert_problems(doc):
    problems = []
    if not isinstance(doc, dict) or set(doc) != {"groups"}:
        return ["top level must be a mapping with exactly 'groups'"]
    names, alerts = set(), set()
    for g in doc["groups"] or []:
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not g["name"]:
            problems.append("a group without a name")
            continue
        if g["name"] in names:
            problems.append(f"duplicate group {g['name']}")
        names.add(g["name"])
        if set(g) - {"name", "interval", "rules", "limit"}:
            problems.append(f"group {g['name']}: unknown keys {set(g) - {'name', 'interval', 'rules', 'limit'}}")
        if not g.get("rules"):
            problems.append(f"group {g['name']}: no rules")
        for r in g.get("rules") or []:
            a = r.get("alert")
            where = f"{g['name']}/{a}"
            if not isinstance(a, str) or not re.fullmatch(r"[A-Z][A-Za-z0-9]+", a):
                problems.append(f"{where}: alert name must be CamelCase")
            if a in alerts:
                problems.append(f"{where}: duplicate alert name")
            alerts.add(a)
            if set(r) - RULE_KEYS:
                problems.append(f"{where}: unknown keys {set(r) - RULE_KEYS}")
            if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                problems.append(f"{where}: no expr")
            else:
                problems += [f"{where}: {p}" for p in lint(r["expr"])]
            if "for" in r and not PROM_DURATION.fullmatch(str(r["for"])):
                problems.append(f"{where}: bad for: {r['for']!r}")
            sev = (r.get("labels") or {}).get("severity")
            if sev not in SEVERITIES:
                problems.append(f"{where}: severity label must be one of {sorted(SEVERITIES)}")
            ann = r.get("annotations") or {}
            for key in ("summary", "description"):
                if not isinstance(ann.get(key), str) or not ann[key].strip():
                    problems.append(f"{where}: no {key} annotation")
            m = RUNBOOK_URL.fullmatch(str(ann.get("runbook_url", "")))
            if not m:
                problems.append(f"{where}: runbook_url must be https://.../{RUNBOOK}#<section>")
            elif len(runbook_sections().get(m.group(1), "").strip()) < 80:
                problems.append(f"{where}: {RUNBOOK} has no section #{m.group(1)} saying what to do")
            for key, text in ann.items():
                if str(text).count("{{") != str(text).count("}}"):
                    problems.append(f"{where}: unbalanced template in {key}")
                for var in re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", str(text)):
                    by = re.search(r"\b(?:by|without)\s*\(([^)]*)\)", r.get("expr", ""))
                    if by and var not in [x.strip() for x in by.group(1).split(",")]:
                        problems.append(f"{where}: annotation uses $labels.{var}, which the expression aggregates away")
    return problems


REQUIRED_ALERTS = {
    "SLA firing lag": "arbiter_sla_firing_lag_seconds_bucket",
    "overdue deadlines": "arbiter_sla_oldest_overdue_seconds",
    "5xx ratio": "arbiter_http_requests_total",
    "database errors": "arbiter_db_errors_total",
    "a target that cannot be scraped": 'up{job="arbiter"} == 0',
    "no target at all": 'absent(up{job="arbiter"})',
}


@check("alerts.yml structure and expressions")
def _():
    assert KNOWN, "no exporter vocabulary"
    with open(ALERTS) as f:
        doc = yaml.safe_load(f)
    problems = alert_problems(doc)
    exprs = [r["expr"] for g in doc["groups"] for r in g["rules"]]
    for what, metric in REQUIRED_ALERTS.items():
        if not any(metric in e for e in exprs):
            problems.append(f"no alert on {what} ({metric})")
    assert not problems, "\n".join(problems)


@check("alerts.yml checker refuses broken rules")
def _():
    base = {"groups": [{"name": "g", "rules": [{
        "alert": "Fine", "expr": "arbiter_db_errors_total > 0", "for": "5m",
        "labels": {"severity": "page"},
        "annotations": {"summary": "s", "description": "d",
                        "runbook_url": "https://x.example/deploy/runbook.md#arbiterdatabaseerrors"}}]}]}
    assert not alert_problems(base), alert_problems(base)
    import copy
    mutations = [
        ("lower-case name", lambda r: r.update(alert="fine")),
        ("bad for", lambda r: r.update({"for": "5 minutes"})),
        ("no severity", lambda r: r.update(labels={})),
        ("bad severity", lambda r: r.update(labels={"severity": "urgent"})),
        ("no summary", lambda r: r["annotations"].pop("summary")),
        ("no runbook_url", lambda r: r["annotations"].pop("runbook_url")),
        ("runbook_url elsewhere", lambda r: r["annotations"].update(runbook_url="https://wiki.example/x")),
        ("runbook section missing", lambda r: r["annotations"].update(
            runbook_url="https://x.example/deploy/runbook.md#arbiternosuchalert")),
        ("unknown key", lambda r: r.update(expression="x")),
        ("unknown metric", lambda r: r.update(expr="arbiter_db_error_total > 0")),
        ("broken template", lambda r: r["annotations"].update(summary="{{ $value ")),
        ("label aggregated away", lambda r: r.update(expr="sum by (job) (arbiter_db_errors_total) > 0")
            or r["annotations"].update(summary="{{ $labels.instance }}")),
    ]
    for name, mut in mutations:
        d = copy.deepcopy(base)
        mut(d["groups"][0]["rules"][0])
        assert alert_problems(d), f"checker accepted: {name}"


@check("promtool check rules alerts.yml")
def _():
    need_promtool()
    cp = run([PROMTOOL, "check", "rules", ALERTS])
    assert cp.returncode == 0, cp.stdout + cp.stderr


RULE_TESTS = r'''
rule_files:
  - @ALERTS@
evaluation_interval: 1m
tests:
  - name: target down
    interval: 1m
    input_series:
      # x stops answering at 2m; y keeps answering; another job's target is down
      - series: 'up{job="arbiter",instance="x"}'
        values: '1 1 0x10'
      - series: 'up{job="arbiter",instance="y"}'
        values: '1x12'
      - series: 'up{job="other",instance="z"}'
        values: '0x12'
    alert_rule_test:
      - eval_time: 3m
        alertname: ArbiterTargetDown
        exp_alerts: []
      - eval_time: 5m
        alertname: ArbiterTargetDown
        exp_alerts:
          - exp_labels: {severity: page, job: arbiter, instance: x}
            exp_annotations:
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbitertargetdown"
              summary: "arbiter on x cannot be scraped"
              description: "Prometheus has failed to scrape x (job arbiter) for 2 minutes. While it is down this replica serves nothing and fires no deadlines."
      - eval_time: 10m
        alertname: ArbiterTargetMissing
        exp_alerts: []
  - name: target missing
    interval: 1m
    input_series:
      # the arbiter target disappears after 3m (scaled to 0, or no longer selected)
      - series: 'up{job="arbiter",instance="x"}'
        values: '1 1 1 1'
      - series: 'up{job="other",instance="z"}'
        values: '1x15'
    alert_rule_test:
      - eval_time: 3m
        alertname: ArbiterTargetMissing
        exp_alerts: []
      - eval_time: 7m
        alertname: ArbiterTargetMissing
        exp_alerts: []
      - eval_time: 14m
        alertname: ArbiterTargetMissing
        exp_alerts:
          - exp_labels: {severity: page, job: arbiter}
            exp_annotations:
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbitertargetmissing"
              summary: "Prometheus has no arbiter target"
              description: "There has been no up{job=\"arbiter\"} series for 5 minutes: no replica is being scraped, so every other arbiter alert is blind."
  - name: sla firing lag
    interval: 1m
    input_series:
      # job a: every firing 1..2.5 s late (p99 ~ 2.485 s); job b: all under 0.5 s
      - series: 'arbiter_sla_firing_lag_seconds_bucket{job="a",instance="x",le="0.5"}'
        values: '0+0x20'
      - series: 'arbiter_sla_firing_lag_seconds_bucket{job="a",instance="x",le="1"}'
        values: '0+0x20'
      - series: 'arbiter_sla_firing_lag_seconds_bucket{job="a",instance="x",le="2.5"}'
        values: '0+60x20'
      - series: 'arbiter_sla_firing_lag_seconds_bucket{job="a",instance="x",le="+Inf"}'
        values: '0+60x20'
      - series: 'arbiter_sla_firing_lag_seconds_bucket{job="b",instance="y",le="0.5"}'
        values: '0+60x20'
      - series: 'arbiter_sla_firing_lag_seconds_bucket{job="b",instance="y",le="1"}'
        values: '0+60x20'
      - series: 'arbiter_sla_firing_lag_seconds_bucket{job="b",instance="y",le="2.5"}'
        values: '0+60x20'
      - series: 'arbiter_sla_firing_lag_seconds_bucket{job="b",instance="y",le="+Inf"}'
        values: '0+60x20'
    alert_rule_test:
      - eval_time: 4m
        alertname: ArbiterSlaFiringLagHigh
        exp_alerts: []
      - eval_time: 12m
        alertname: ArbiterSlaFiringLagHigh
        exp_alerts:
          - exp_labels: {severity: page, job: a}
            exp_annotations:
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbiterslafiringlaghigh"
              summary: "SLA deadlines fire late (p99 lag 2.485s)"
              description: "The 99th percentile of the delay between a deadline's due time and its firing has been above 1s for 5 minutes in job a. Automatic refunds and acceptances are going out late: check the scheduler thread, the database (arbiter_db_query_duration_seconds) and the pool."
  - name: overdue deadlines
    interval: 1m
    input_series:
      - series: 'arbiter_sla_oldest_overdue_seconds{job="a",instance="x"}'
        values: '0 0 0 120 180 240 300 360 420 480'
      - series: 'arbiter_sla_oldest_overdue_seconds{job="a",instance="y"}'
        values: '0x9'
      # exactly 60 s is not over the threshold
      - series: 'arbiter_sla_oldest_overdue_seconds{job="b",instance="z"}'
        values: '0 30 60 60 60 60 0x3'
    alert_rule_test:
      - eval_time: 3m
        alertname: ArbiterSlaDeadlinesOverdue
        exp_alerts: []
      - eval_time: 6m
        alertname: ArbiterSlaDeadlinesOverdue
        exp_alerts:
          - exp_labels: {severity: page, job: a}
            exp_annotations:
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbitersladeadlinesoverdue"
              summary: "A deadline is 5m 0s overdue"
              description: "The oldest due deadline in job a has waited more than 60s without firing. Cases are not moving on expiry (automatic refunds, closures). Check /readyz, the scheduler's logs and database errors."
  - name: breaches
    interval: 1m
    input_series:
      - series: 'arbiter_sla_breaches_total{job="a",instance="x",deadline="arbitration"}'
        values: '0 0 0 1x21'
      - series: 'arbiter_sla_breaches_total{job="a",instance="x",deadline="seller_response"}'
        values: '0x24'
    alert_rule_test:
      - eval_time: 2m
        alertname: ArbiterSlaBreaches
        exp_alerts: []
      - eval_time: 5m
        alertname: ArbiterSlaBreaches
        exp_alerts:
          - exp_labels: {severity: ticket, job: a, deadline: arbitration}
            exp_annotations:
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbiterslabreaches"
              summary: "SLA breached: arbitration"
              description: "1 arbitration deadline(s) were breached in the last 15 minutes in job a. The cases wait for a human decision; find them with GET /v1/cases?state=in_arbitration."
      - eval_time: 24m
        alertname: ArbiterSlaBreaches
        exp_alerts: []
  - name: 5xx ratio
    interval: 1m
    input_series:
      # job a: 3 of 103 requests fail (2.9 %); job b: 5 of 1505 (0.33 %)
      - series: 'arbiter_http_requests_total{job="a",instance="x",route="/v1/cases",method="POST",status="201"}'
        values: '0+100x20'
      - series: 'arbiter_http_requests_total{job="a",instance="x",route="/v1/cases",method="POST",status="503"}'
        values: '0+3x20'
      - series: 'arbiter_http_requests_total{job="b",instance="y",route="/v1/cases",method="GET",status="200"}'
        values: '0+1000x20'
      - series: 'arbiter_http_requests_total{job="b",instance="y",route="/v1/cases",method="GET",status="500"}'
        values: '0+5x20'
      - series: 'arbiter_http_requests_total{job="b",instance="y",route="unmatched",method="GET",status="404"}'
        values: '0+500x20'
    alert_rule_test:
      - eval_time: 4m
        alertname: ArbiterHttp5xxRatioHigh
        exp_alerts: []
      - eval_time: 12m
        alertname: ArbiterHttp5xxRatioHigh
        exp_alerts:
          - exp_labels: {severity: page, job: a}
            exp_annotations:
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbiterhttp5xxratiohigh"
              summary: "2.913% of arbiter requests fail with 5xx"
              description: "More than 1% of the HTTP requests of job a have been answered with a 5xx status for 5 minutes. 503 usually means the database is unreachable or the pool is exhausted; see arbiter_db_errors_total and arbiter_db_pool_connections."
  - name: database
    interval: 1m
    input_series:
      - series: 'arbiter_db_errors_total{job="a",instance="x"}'
        values: '0+1x20'
      - series: 'arbiter_db_errors_total{job="a",instance="y"}'
        values: '5x20'
      - series: 'arbiter_db_pool_connections{job="a",instance="x",state="broken"}'
        values: '0 0 2x20'
      - series: 'arbiter_db_pool_connections{job="a",instance="x",state="idle"}'
        values: '8x20'
      - series: 'arbiter_db_pool_connections{job="a",instance="y",state="broken"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 2m
        alertname: ArbiterDatabaseErrors
        exp_alerts: []
      - eval_time: 10m
        alertname: ArbiterDatabaseErrors
        exp_alerts:
          - exp_labels: {severity: ticket, job: a, instance: x}
            exp_annotations:
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbiterdatabaseerrors"
              summary: "arbiter database errors on x"
              description: "x (a) has been getting database errors for 2 minutes (0.0167 per second). Check PostgreSQL's availability, connection limits and the service log."
      - eval_time: 6m
        alertname: ArbiterDatabasePoolBroken
        exp_alerts: []
      - eval_time: 8m
        alertname: ArbiterDatabasePoolBroken
        exp_alerts:
          - exp_labels: {severity: ticket, job: a, instance: x}
            exp_annotations:
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbiterdatabasepoolbroken"
              summary: "arbiter has broken database connections on x"
              description: "2 pooled connection(s) of x have been broken for 5 minutes; requests that need them wait or fail."
  - name: calendar running out
    interval: 1m
    input_series:
      - series: 'arbiter_calendar_remaining_seconds{job="a",instance="x"}'
        values: '5270400x30 5097600x120'
      # -1: today's year is not covered at all
      - series: 'arbiter_calendar_remaining_seconds{job="b",instance="y"}'
        values: '-86400x150'
    alert_rule_test:
      - eval_time: 20m
        alertname: ArbiterCalendarRunningOut
        exp_alerts: []
      - eval_time: 70m
        alertname: ArbiterCalendarRunningOut
        exp_alerts:
          - exp_labels: {severity: ticket, job: b}
            exp_annotations:
              summary: "The working-day calendar ends in -1d 0h 0m 0s"
              description: "The working-day calendar of job b ends in fewer than 60 days. Working-day deadlines counting past its last year fall back to Monday to Friday (calendar_incomplete). Load the next year's schedule (China: the State Council notice, published around November) with PUT /v1/calendars/{id}."
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbitercalendarrunningout"
      - eval_time: 100m
        alertname: ArbiterCalendarRunningOut
        exp_alerts:
          - exp_labels: {severity: ticket, job: a}
            exp_annotations:
              summary: "The working-day calendar ends in 59d 0h 0m 0s"
              description: "The working-day calendar of job a ends in fewer than 60 days. Working-day deadlines counting past its last year fall back to Monday to Friday (calendar_incomplete). Load the next year's schedule (China: the State Council notice, published around November) with PUT /v1/calendars/{id}."
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbitercalendarrunningout"
          - exp_labels: {severity: ticket, job: b}
            exp_annotations:
              summary: "The working-day calendar ends in -1d 0h 0m 0s"
              description: "The working-day calendar of job b ends in fewer than 60 days. Working-day deadlines counting past its last year fall back to Monday to Friday (calendar_incomplete). Load the next year's schedule (China: the State Council notice, published around November) with PUT /v1/calendars/{id}."
              runbook_url: "https://arbiter.example.com/deploy/runbook.md#arbitercalendarrunningout"
'''


@check("promtool test rules (every alert fires and stays quiet as expected)")
def _():
    need_promtool()
    path = os.path.join(TMP, "alerts_test.yml")
    with open(path, "w") as f:
        f.write(RULE_TESTS.replace("@ALERTS@", os.path.abspath(ALERTS)))
    with open(ALERTS) as f:
        names = {r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]}
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS))
    assert names == tested, f"alerts without a unit test: {sorted(names - tested)}; unknown: {sorted(tested - names)}"
    cp = run([PROMTOOL, "test", "rules", path])
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-2000:]


# ---------------------------------------------------------------------------
# arbiter.json
# ---------------------------------------------------------------------------

PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "text", "heatmap", "piechart"}
BUILTIN_VARS = {"__rate_interval", "__interval", "__range", "__all"}
DS = {"type": "prometheus", "uid": "${datasource}"}


def dashboard_problems(d):
    p = []
    for key, typ in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list),
                     ("templating", dict), ("time", dict), ("editable", bool)):
        if not isinstance(d.get(key), typ):
            p.append(f"top-level {key!r} missing or not {typ.__name__}")
    if p:
        return p
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"]):
        p.append("uid must be 1..40 characters of [A-Za-z0-9_-]")
    if not 36 <= d["schemaVersion"] <= 41:
        p.append(f"schemaVersion {d['schemaVersion']} outside 36..41")
    variables = d["templating"].get("list", [])
    vnames = [v.get("name") for v in variables]
    if len(set(vnames)) != len(vnames):
        p.append("duplicate template variable")
    dsv = [v for v in variables if v.get("type") == "datasource"]
    if not dsv or dsv[0].get("name") != "datasource" or dsv[0].get("query") != "prometheus":
        p.append("needs a template variable 'datasource' of type datasource, query prometheus")
    defined = set(vnames) | BUILTIN_VARS

    def used_vars(text):
        return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))

    for v in variables:
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((\w+)(\{.*\})?,\s*(\w+)\)", q or "")
            if not m:
                p.append(f"variable {v.get('name')}: query must be label_values(metric, label)")
            else:
                metric, _, label = m.groups()
                if metric not in KNOWN:
                    p.append(f"variable {v.get('name')}: unknown metric {metric}")
                elif label not in KNOWN[metric] | TARGET_LABELS:
                    p.append(f"variable {v.get('name')}: {metric} has no label {label}")
            if v.get("datasource") != DS:
                p.append(f"variable {v.get('name')}: datasource must be {DS}")
            for u in used_vars(q or "") - defined:
                p.append(f"variable {v.get('name')}: uses undefined ${u}")

    ids, cells = set(), {}
    for panel in d["panels"]:
        pid, typ, title = panel.get("id"), panel.get("type"), panel.get("title")
        where = f"panel {pid} {title!r}"
        if not isinstance(pid, int) or pid in ids:
            p.append(f"{where}: id missing or duplicate")
        ids.add(pid)
        if typ not in PANEL_TYPES:
            p.append(f"{where}: unknown type {typ!r}")
        if not isinstance(title, str) or not title:
            p.append(f"{where}: no title")
        g = panel.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "xywh"):
            p.append(f"{where}: gridPos needs integer x, y, w, h")
            continue
        if g["w"] < 1 or g["h"] < 1 or g["x"] < 0 or g["y"] < 0 or g["x"] + g["w"] > 24:
            p.append(f"{where}: gridPos outside the 24-column grid")
        for xx in range(g["x"], g["x"] + g["w"]):
            for yy in range(g["y"], g["y"] + g["h"]):
                if (xx, yy) in cells:
                    p.append(f"{where}: overlaps panel {cells[(xx, yy)]}")
                    break
                cells[(xx, yy)] = pid
            else:
                continue
            break
        if typ == "row":
            if g["w"] != 24 or g["h"] != 1:
                p.append(f"{where}: a row is 24 wide and 1 high")
            if not panel.get("collapsed") and panel.get("panels"):
                p.append(f"{where}: an open row keeps its panels at top level")
            continue
        if panel.get("datasource") != DS:
            p.append(f"{where}: datasource must be {DS}")
        targets = panel.get("targets") or []
        if not targets:
            p.append(f"{where}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            p.append(f"{where}: refIds missing or not unique")
        for t in targets:
            e = t.get("expr")
            if not isinstance(e, str) or not e.strip():
                p.append(f"{where}: target {t.get('refId')} has no expr")
                continue
            p += [f"{where} {t.get('refId')}: {x}" for x in lint(e)]
            for u in used_vars(e) - defined:
                p.append(f"{where} {t.get('refId')}: uses undefined ${u}")
        if not isinstance((panel.get("fieldConfig") or {}).get("defaults", {}).get("unit"), str):
            p.append(f"{where}: fieldConfig.defaults.unit missing")
    return p


REQUIRED_PANELS = {
    "request rate": r"rate\(arbiter_http_requests_total",
    "latency p50": r"histogram_quantile\(0\.5, .*arbiter_http_request_duration_seconds_bucket",
    "latency p99": r"histogram_quantile\(0\.99, .*arbiter_http_request_duration_seconds_bucket",
    "cases by state": r"by \(state\) \(arbiter_cases\{",
    "auto-refunds": r"arbiter_auto_refunds_total",
    "SLA firing lag p99": r"histogram_quantile\(0\.99, .*arbiter_sla_firing_lag_seconds_bucket",
    "SLA breaches": r"arbiter_sla_breaches_total",
    "oldest overdue": r"arbiter_sla_oldest_overdue_seconds",
    "DB pool by state": r"by \(state\) \(arbiter_db_pool_connections",
    "DB errors": r"arbiter_db_errors_total",
}


def all_exprs(d):
    return [(panel["id"], t["refId"], t["expr"]) for panel in d["panels"]
            for t in panel.get("targets") or [] if t.get("expr")]


@check("arbiter.json structure and expressions")
def _():
    assert KNOWN, "no exporter vocabulary"
    with open(DASH) as f:
        d = json.load(f)
    problems = dashboard_problems(d)
    exprs = [e for _, _, e in all_exprs(d)]
    for what, rx in REQUIRED_PANELS.items():
        if not any(re.search(rx, e) for e in exprs):
            problems.append(f"no panel shows {what} (/{rx}/)")
    assert not problems, "\n".join(problems)


@check("arbiter.json checker refuses broken dashboards")
def _():
    import copy
    with open(DASH) as f:
        base = json.load(f)
    assert not dashboard_problems(base)
    first = next(i for i, p in enumerate(base["panels"]) if p["type"] != "row")
    mutations = [
        ("duplicate id", lambda d: d["panels"][first].update(id=d["panels"][first + 1]["id"])),
        ("overlap", lambda d: d["panels"][first].update(gridPos=dict(d["panels"][first + 1]["gridPos"]))),
        ("too wide", lambda d: d["panels"][first]["gridPos"].update(x=20, w=8)),
        ("bad expr", lambda d: d["panels"][first]["targets"][0].update(expr="sum(rate(arbiter_nope_total[5m]))")),
        ("undefined variable", lambda d: d["panels"][first]["targets"][0].update(
            expr='sum(rate(arbiter_db_errors_total{job=~"$cluster"}[5m]))')),
        ("no datasource variable", lambda d: d["templating"].update(list=d["templating"]["list"][1:])),
        ("old schema", lambda d: d.update(schemaVersion=16)),
        ("duplicate refId", lambda d: d["panels"][first]["targets"].append(dict(d["panels"][first]["targets"][0]))),
    ]
    for name, mut in mutations:
        d = copy.deepcopy(base)
        mut(d)
        assert dashboard_problems(d), f"checker accepted: {name}"


@check("promtool parses every dashboard expression")
def _():
    need_promtool()
    with open(DASH) as f:
        d = json.load(f)
    rules = []
    for pid, ref, e in all_exprs(d):
        for var, val in GRAFANA_RANGES.items():
            e = e.replace(var, val)
        rules.append({"record": f"dashboard:panel{pid}:{ref}", "expr": e})
    path = os.path.join(TMP, "dashboard_rules.yml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    cp = run([PROMTOOL, "check", "rules", path])
    assert cp.returncode == 0, cp.stdout + cp.stderr


# In CI (CI=true) a check that could not run is a failure: make deps
# installs every tool these checks need.
CI = os.environ.get("CI", "").lower() == "true"
passed = sum(1 for r in results if r[0] == "PASS")
skipped = sum(1 for r in results if r[0] == "SKIP")
failed = sum(1 for r in results if r[0] == "FAIL") + (skipped if CI else 0)
for status, name, msg in results:
    print(f"{status} {name}" + (f": {msg}" if status == "SKIP" else ""))
    if status == "FAIL":
        for line in msg.rstrip().splitlines():
            print(f"    {line}")
if skipped:
    print(f"prometheus-check: {skipped} skipped" + (" (CI=true: counted as failed)" if CI else
          " (a skip is not a check: make deps installs promtool; CI=true fails them)"))
print(f"prometheus-check: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
