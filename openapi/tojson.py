#!/usr/bin/python3
"""openapi/arbiter.yaml -> JSON, for GET /openapi.json (embedded into the binary).

Usage: tojson.py IN.yaml OUT.json

Strict where YAML is lax: a repeated mapping key, or a value JSON cannot hold
(an unquoted date becomes a datetime in YAML), is an error rather than a
silently different document. The output is compact UTF-8 JSON, written
atomically. Needs only /usr/bin/python3 and python3-yaml (Debian).
"""
import json
import os
import sys
import tempfile

import yaml


class StrictLoader(yaml.SafeLoader):
    pass


def _mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _check(node, path="#"):
    """Only what JSON has: dict with string keys, list, str, int, float, bool, None."""
    if isinstance(node, dict):
        for k, v in node.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: key {k!r} is a {type(k).__name__}, not a string (quote it)")
            _check(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check(v, f"{path}/{i}")
    elif not (node is None or isinstance(node, (str, bool, int, float))):
        raise ValueError(f"{path}: {node!r} is a {type(node).__name__}; JSON has no such value (quote it)")


def main(argv):
    if len(argv) != 3:
        print("usage: tojson.py IN.yaml OUT.json", file=sys.stderr)
        return 2
    src, dst = argv[1], argv[2]
    try:
        with open(src, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=StrictLoader)
        _check(doc)
        if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1"):
            raise ValueError("not an OpenAPI 3.1 document")
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (OSError, yaml.YAMLError, ValueError) as e:
        print(f"tojson.py: {src}: {e}", file=sys.stderr)
        return 1
    d = os.path.dirname(os.path.abspath(dst))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".openapi-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        os.unlink(tmp)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
