"""The OpenAPI contract (openapi/arbiter.yaml) as a checker of real traffic.

    violations = validate(method, path, query, req_headers, req_body,
                          status, resp_headers, resp_body)

returns a list of human-readable violations (empty when the exchange keeps
the contract). It checks:

  - the path is one the spec serves (templates, path parameter schemas, the
    aliases in x-aliases, one forgiven trailing slash); an unknown path must
    answer 404 (components/responses/NotFound);
  - the method is one the path offers; another must answer 405 with `Allow`
    listing exactly the spec's methods (components/responses/MethodNotAllowed);
  - the status is documented for the operation (413, a body over the limit,
    and 431, a header block libmicrohttpd cannot hold, may answer on any path:
    components/responses/PayloadTooLarge, HeaderFieldsTooLarge);
  - the response's documented headers: required ones present, every present
    one valid against its schema; `ETag` names the body's `version`; a
    `Location` ends with the body's `id`; a problem's `request_id` is the
    `X-Request-Id` (unless the answer is an idempotent replay);
  - the Content-Type is one documented, and the body validates against that
    media type's schema (JSON Schema 2020-12, python3-jsonschema; refs inlined);
    a response documented without content has an empty body;
  - for a 2xx answer, the request too: path, query and header parameters and
    the body against the request schema, and the Authorization header on an
    operation that needs a key.

Recording hook (for helpers.http_request or Server.request):

    contract.record(method, path_with_query, req_headers, req_body,
                    status, resp_headers, resp_body)

req_body: None, bytes, str, or the object sent as JSON; resp_body: the parsed
JSON, or text/bytes. Violations accumulate in a process-wide list:
contract.violations(), contract.exchanges() (how many were recorded),
contract.report(). Recorder() makes a private list (tests of the checker).

Standard library + python3-yaml + python3-jsonschema (Debian: 4.10) only.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "arbiter.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_ERRORS_PER_BODY = 5
# Answers any path may give, whatever its operation documents (see info in the
# spec): status -> components/responses/<name>.
GLOBAL_ANSWERS = {400: "BadRequestTarget", 413: "PayloadTooLarge", 431: "HeaderFieldsTooLarge"}

_RFC3339 = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$")


def _format_checker() -> jsonschema.FormatChecker:
    fc = jsonschema.FormatChecker(())   # only the formats below, whatever is installed

    @fc.checks("date-time")
    def _date_time(value):  # noqa: ANN001
        return not isinstance(value, str) or bool(_RFC3339.match(value))

    return fc


def _is_json_type(media: str) -> bool:
    base = media.split(";")[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def _media_params(media: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in media.split(";")]
    params = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip().lower()] = v.strip().strip('"')
    return parts[0].lower(), params


class SpecError(Exception):
    pass


class Contract:
    """One loaded spec; validate() is thread-safe (caches are filled under a lock)."""

    def __init__(self, spec_path: str | Path = SPEC_PATH, spec: dict | None = None):
        if spec is None:
            with open(spec_path, encoding="utf-8") as f:
                spec = yaml.safe_load(f)
        self.spec = spec
        self._resolved: dict[str, Any] = {}
        self._validators: dict[int, tuple] = {}
        self._lock = threading.RLock()
        self._format_checker = _format_checker()
        self.resolved = self.resolve(spec)     # the whole spec, refs inlined once
        self._routes = self._build_routes()

    # ---- $ref resolution (inlining; the spec has no recursive schemas) ----
    def pointer(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise SpecError(f"only local refs are supported: {ref}")
        node: Any = self.spec
        for part in ref[2:].split("/"):
            part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError) as e:
                raise SpecError(f"unresolvable $ref {ref}") from e
        return node

    def resolve(self, node: Any, _stack: tuple = ()) -> Any:
        """node with every $ref replaced by its (resolved) target. Targets are
        shared, so a schema resolves to the same object every time."""
        if isinstance(node, dict):
            if "$ref" in node and isinstance(node["$ref"], str):
                ref = node["$ref"]
                if ref in _stack:
                    raise SpecError(f"recursive $ref {' -> '.join(_stack + (ref,))}")
                with self._lock:
                    target = self._resolved.get(ref)
                    if target is None:
                        target = self.resolve(self.pointer(ref), _stack + (ref,))
                        self._resolved[ref] = target
                rest = {k: v for k, v in node.items() if k != "$ref"}
                if not rest:
                    return target
                rest = self.resolve(rest, _stack)
                if ref.startswith("#/components/schemas/"):
                    # JSON Schema 2020-12: $ref applies alongside its siblings
                    return {**rest, "allOf": [target] + list(rest.get("allOf", []))}
                # other OpenAPI objects: summary/description siblings override
                return {**target, **rest}
            return _flatten({k: self.resolve(v, _stack) for k, v in node.items()})
        if isinstance(node, list):
            return [self.resolve(v, _stack) for v in node]
        return node

    def validator(self, schema: dict) -> jsonschema.Draft202012Validator:
        """A cached validator; schema must be part of self.resolved (stable ids)."""
        key = id(schema)
        with self._lock:
            entry = self._validators.get(key)
            if entry is None or entry[1] is not schema:
                entry = (jsonschema.Draft202012Validator(schema, format_checker=self._format_checker),
                         schema)
                if len(self._validators) < 10000:
                    self._validators[key] = entry
            return entry[0]

    def schema_errors(self, schema: dict, value: Any, where: str) -> list[str]:
        errs = sorted(self.validator(schema).iter_errors(value),
                      key=lambda e: (list(e.absolute_path).__repr__(), e.message))
        out = []
        for e in errs[:MAX_ERRORS_PER_BODY]:
            path = "".join(f"/{p}" for p in e.absolute_path)
            best = jsonschema.exceptions.best_match([e])
            msg = best.message if best is not None else e.message
            if len(msg) > 300:
                msg = msg[:300] + "..."
            out.append(f"{where}{path}: {msg}")
        if len(errs) > MAX_ERRORS_PER_BODY:
            out.append(f"{where}: ... and {len(errs) - MAX_ERRORS_PER_BODY} more")
        return out

    # ---- routes ----
    def _build_routes(self) -> list[dict]:
        routes = []
        for tmpl, item in (self.resolved.get("paths") or {}).items():
            names = re.findall(r"\{([^}]+)\}", tmpl)
            rx = "^" + re.sub(r"\\\{([^}]+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)",
                              re.escape(tmpl)) + "$"
            methods = [m for m in HTTP_METHODS if m in item]
            params = {}
            for p in item.get("parameters") or []:
                if p.get("in") == "path":
                    params[p["name"]] = p.get("schema") or {}
            routes.append({"template": tmpl, "regex": re.compile(rx), "names": names,
                           "item": item, "methods": methods, "path_params": params,
                           "aliases": list(item.get("x-aliases") or [])})
        # literal templates first
        routes.sort(key=lambda r: (len(r["names"]), r["template"]))
        return routes

    def match(self, path: str) -> tuple[dict | None, dict]:
        """(route, path params) of a request path (no query); (None, {}) when the
        service serves no such path."""
        path = urllib.parse.unquote(path)
        for r in self._routes:
            if path in r["aliases"]:
                return r, {}
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        for r in self._routes:
            m = r["regex"].match(path)
            if not m:
                continue
            params = m.groupdict()
            ok = all(not self.schema_errors(r["path_params"].get(n, {}), v, "")
                     for n, v in params.items())
            if ok:
                return r, params
            return None, params
        return None, {}

    def component_response(self, name: str) -> dict:
        return self.resolved["components"]["responses"][name]

    # ---- the check ----
    def validate(self, method: str, path: str, query: dict | str | None, req_headers: dict | None,
                 req_body: Any, status: int, resp_headers: dict | None,
                 resp_body: Any) -> list[str]:
        method = method.upper()
        if query is None:
            query = {}
        if isinstance(query, str):
            query = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        rq = {str(k).lower(): v for k, v in (req_headers or {}).items() if v is not None}
        rs = {str(k).lower(): v for k, v in (resp_headers or {}).items()}
        out: list[str] = []

        route, _params = self.match(path)
        if status in GLOBAL_ANSWERS:
            op = route["item"].get(method.lower()) if route else None
            if op is None or str(status) not in (op.get("responses") or {}):
                return self._check_response(self.component_response(GLOBAL_ANSWERS[status]),
                                            method, status, rs, resp_body)
        if route is None:
            if status != 404:
                return [f"the spec serves no path {path!r}, yet the status is {status} (expected 404)"]
            return self._check_response(self.component_response("NotFound"), method, status, rs,
                                        resp_body)

        op = route["item"].get(method.lower())
        if op is None:
            if status != 405:
                return [f"{method} is not an operation of {route['template']} in the spec, "
                        f"yet the status is {status} (expected 405)"]
            out += self._check_response(self.component_response("MethodNotAllowed"), method,
                                        status, rs, resp_body)
            allow = rs.get("allow")
            if allow is not None:
                got = {m.strip().upper() for m in allow.split(",") if m.strip()}
                want = {m.upper() for m in route["methods"]}
                if got != want:
                    out.append(f"Allow: {allow!r} but the spec offers {', '.join(sorted(want))} "
                               f"on {route['template']}")
            return out

        responses = op.get("responses") or {}
        resp = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") \
            or responses.get("default")
        if resp is None:
            return [f"status {status} is not documented for {method} {route['template']} "
                    f"(documented: {', '.join(sorted(responses))})"]
        out += self._check_response(resp, method, status, rs, resp_body)
        if 200 <= status < 300:
            out += self._check_request(op, route, method, path, query, rq, req_body)
        return out

    def _check_response(self, resp: dict, method: str, status: int, rs: dict,
                        body: Any) -> list[str]:
        out = []
        for name, h in (resp.get("headers") or {}).items():
            val = rs.get(name.lower())
            if val is None:
                if h.get("required"):
                    out.append(f"response header {name} is missing")
                continue
            schema = h.get("schema") or {}
            out += self.schema_errors(schema, _coerce(val, schema), f"response header {name}")
        content = resp.get("content") or {}
        if method == "HEAD" or resp.get("x-arbiter-body") == "unspecified":
            return out
        if not content:
            if body not in (None, "", b""):
                out.append(f"the response has a body ({str(body)[:80]!r}) but the spec documents none")
            return out
        ctype = rs.get("content-type")
        if not ctype:
            return out + ["the response has no Content-Type"]
        base, params = _media_params(ctype)
        media = None
        for m in content:
            mb, mp = _media_params(m)
            if mb == base and all(params.get(k) == v for k, v in mp.items()):
                media = m
                break
        if media is None:
            return out + [f"Content-Type {ctype!r} is not documented (documented: {', '.join(content)})"]
        schema = (content[media] or {}).get("schema")
        if _is_json_type(media):
            ok, parsed = _as_json(body)
            if not ok:
                return out + [f"the body is not JSON: {str(body)[:120]!r}"]
            body = parsed
        elif isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if schema is not None:
            out += self.schema_errors(schema, body, "response body")
        if isinstance(body, dict):
            out += self._semantics(resp, status, rs, body)
        return out

    def _semantics(self, resp: dict, status: int, rs: dict, body: dict) -> list[str]:
        out = []
        hdrs = resp.get("headers") or {}
        etag = rs.get("etag")
        if "ETag" in hdrs and etag is not None and isinstance(body.get("version"), int) \
                and etag != f'"{body["version"]}"':
            out.append(f"ETag {etag} does not name the body's version {body['version']}")
        loc = rs.get("location")
        if "Location" in hdrs and loc is not None and isinstance(body.get("id"), str) \
                and not loc.endswith("/" + body["id"]):
            out.append(f"Location {loc} does not name the body's id {body['id']}")
        rid = body.get("request_id")
        if status >= 400 and isinstance(rid, str) and rs.get("x-request-id") is not None \
                and rs.get("idempotent-replayed") is None and rid != rs.get("x-request-id"):
            out.append(f"problem request_id {rid!r} is not the X-Request-Id {rs.get('x-request-id')!r}")
        if status >= 400 and isinstance(body.get("status"), int) and body["status"] != status:
            out.append(f"problem status {body['status']} differs from the HTTP status {status}")
        return out

    def _check_request(self, op: dict, route: dict, method: str, path: str, query: dict,
                       rq: dict, body: Any) -> list[str]:
        out = []
        params = {}
        for p in (route["item"].get("parameters") or []) + (op.get("parameters") or []):
            params[(p.get("in"), p.get("name"))] = p     # operation's win
        for (where, name), p in params.items():
            schema = p.get("schema") or {}
            if where == "query":
                val = query.get(name)
            elif where == "header":
                val = rq.get(name.lower())
            else:
                continue
            if val is None:
                if p.get("required"):
                    out.append(f"request {where} parameter {name} is required but was not sent")
                continue
            out += self.schema_errors(schema, _coerce(val, schema), f"request {where} parameter {name}")
        sec = op.get("security", self.resolved.get("security"))
        if sec and {} not in sec and "authorization" not in rq:
            out.append("answered 2xx to a request without Authorization on an operation that needs a key")
        rb = op.get("requestBody")
        if rb:
            if body is None or body in (b"", ""):
                if rb.get("required"):
                    out.append("answered 2xx to a request without the required body")
                return out
            content = rb.get("content") or {}
            media = next((m for m in content if _is_json_type(m)), None)
            if media is not None:
                ok, parsed = _as_json(body)
                if not ok:
                    return out + [f"answered 2xx to a request body that is not JSON: {str(body)[:80]!r}"]
                schema = (content[media] or {}).get("schema")
                if schema is not None:
                    out += self.schema_errors(schema, parsed, "request body")
        return out


_APPLICATORS = {"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas",
                "patternProperties", "additionalProperties", "unevaluatedProperties",
                "unevaluatedItems", "$ref", "$dynamicRef", "propertyNames"}


def _flatten(node: dict) -> dict:
    """{allOf: [S], properties: P, unevaluatedProperties: false} with S a plain
    object schema is S + P with additionalProperties: false: the same set of
    valid documents, validated several times faster (python3-jsonschema walks
    every subschema again for unevaluatedProperties)."""
    if node.get("unevaluatedProperties") is not False or len(node.get("allOf") or []) != 1:
        return node
    inner = node["allOf"][0]
    outer = {k: v for k, v in node.items() if k not in ("allOf", "unevaluatedProperties")}
    if not isinstance(inner, dict) or _APPLICATORS & (set(inner) | set(outer)):
        return node
    merged = {**inner, **{k: v for k, v in outer.items() if k not in ("properties", "required")}}
    merged["properties"] = {**(inner.get("properties") or {}), **(outer.get("properties") or {})}
    merged["required"] = list(dict.fromkeys(list(inner.get("required") or [])
                                             + list(outer.get("required") or [])))
    merged["additionalProperties"] = False
    return merged


def _as_json(body: Any) -> tuple[bool, Any]:
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False, None
    if isinstance(body, str):
        try:
            return True, json.loads(body)
        except ValueError:
            return False, None
    return True, body


def _coerce(val: Any, schema: dict) -> Any:
    """Header and query values are text; read them as the schema's type."""
    if not isinstance(val, str):
        return val
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "integer" in types and re.fullmatch(r"-?\d+", val):
        return int(val)
    if "number" in types:
        try:
            return float(val)
        except ValueError:
            return val
    if "boolean" in types and val in ("true", "false"):
        return val == "true"
    return val


# --------------------------------------------------------------------------
# The recording hook
# --------------------------------------------------------------------------
class Recorder:
    """Validates exchanges as they happen and keeps the violations."""

    def __init__(self, contract: Contract | None = None):
        self._contract = contract
        self._lock = threading.Lock()
        self._violations: list[str] = []
        self._count = 0

    @property
    def contract(self) -> Contract:
        if self._contract is None:
            with self._lock:
                if self._contract is None:
                    self._contract = Contract()
        return self._contract

    def record(self, method: str, path_with_query: str, req_headers: dict | None, req_body: Any,
               status: int, resp_headers: dict | None, resp_body: Any) -> list[str]:
        """Checks one exchange; returns (and keeps) its violations."""
        u = urllib.parse.urlsplit(path_with_query)
        try:
            found = self.contract.validate(method, u.path or "/", u.query, req_headers, req_body,
                                           status, resp_headers, resp_body)
        except Exception as e:  # a checker bug must not break the test that made the request
            found = [f"the contract checker failed: {type(e).__name__}: {e}"]
        where = f"{method.upper()} {path_with_query} -> {status}"
        with self._lock:
            self._count += 1
            self._violations += [f"{where}: {v}" for v in found]
        return found

    def violations(self) -> list[str]:
        with self._lock:
            return list(self._violations)

    def exchanges(self) -> int:
        with self._lock:
            return self._count

    def reset(self) -> None:
        with self._lock:
            self._violations.clear()
            self._count = 0

    def report(self, limit: int = 60) -> str:
        v = self.violations()
        head = (f"OpenAPI contract: {self.exchanges()} exchanges checked against "
                f"{SPEC_PATH.relative_to(SPEC_PATH.parents[1])}, {len(v)} violations")
        lines = [head] + [f"  {x}" for x in v[:limit]]
        if len(v) > limit:
            lines.append(f"  ... and {len(v) - limit} more")
        return "\n".join(lines)


_DEFAULT = Recorder()


def default_contract() -> Contract:
    return _DEFAULT.contract


def validate(method: str, path: str, query: dict | str | None, req_headers: dict | None,
             req_body: Any, status: int, resp_headers: dict | None, resp_body: Any) -> list[str]:
    """Violations of one exchange (nothing recorded)."""
    return default_contract().validate(method, path, query, req_headers, req_body, status,
                                       resp_headers, resp_body)


def record(method: str, path_with_query: str, req_headers: dict | None, req_body: Any,
           status: int, resp_headers: dict | None, resp_body: Any) -> list[str]:
    """The hook: checks one exchange and keeps its violations process-wide."""
    return _DEFAULT.record(method, path_with_query, req_headers, req_body, status,
                           resp_headers, resp_body)


def violations() -> list[str]:
    return _DEFAULT.violations()


def exchanges() -> int:
    return _DEFAULT.exchanges()


def reset() -> None:
    _DEFAULT.reset()


def report(limit: int = 60) -> str:
    return _DEFAULT.report(limit)
