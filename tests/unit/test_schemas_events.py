#!/usr/bin/env python3
"""Checks schemas/mparticle-audience-message.schema.json against the event fixtures.

- every tests/data/events/valid/*.json parses like the worker parses (strict UTF-8, no duplicate
  keys, no NUL in strings, no NaN/Infinity, integers within int64, nesting <= 32) and validates;
- mParticle's own example requests (vendored in schemas/vendor/mparticle/) validate too;
- every tests/data/events/invalid/<reason>__<case>.json is rejected: by that strict parse for the
  parse-level reasons (empty, not_json, nesting), otherwise by the schema -- except the few cases
  listed in NOT_EXPRESSIBLE, which the schema cannot state (the decoder alone rejects them).
"""
import json
import os
import sys

import jsonschema

SRC = os.environ.get("AW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
MPARTICLE_EXAMPLES = os.path.join(SRC, "schemas", "vendor", "mparticle", "examples")
SCHEMA_PATH = os.path.join(SRC, "schemas", "mparticle-audience-message.schema.json")
EVENTS = os.path.join(SRC, "tests", "data", "events")
MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Invalid fixtures the schema cannot express; each needs a reason.
NOT_EXPRESSIBLE = {
    # "9223372036854775808": 19 digits like INT64_MAX; a pattern bounding the value is unreadable.
    "bad_value__account_id_string_too_large.json",
}


class ParseError(Exception):
    """The payload fails the worker's parse rules; .kind is the expected reason."""

    def __init__(self, kind, why):
        super().__init__(why)
        self.kind = kind


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ParseError("not_json", "duplicate key")
    return dict(pairs)


def _reject_constant(name):
    raise ParseError("not_json", "non-standard constant " + name)


def _int(text):
    v = int(text)
    if v < INT64_MIN or v > INT64_MAX:
        raise ParseError("not_json", "integer out of int64 range")
    return v


def _check_tree(doc):
    """Nesting depth and NUL characters, without recursion."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)) and depth > MAX_DEPTH:
            raise ParseError("oversize", "nesting")
        if isinstance(node, dict):
            for k, v in node.items():
                if "\0" in k:
                    raise ParseError("not_json", "NUL in key")
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, str) and "\0" in node:
            raise ParseError("not_json", "NUL in string")


def worker_parse(data):
    """Parses bytes with the decoder's rules (see worker/ingest/event.h)."""
    if len(data) == 0:
        raise ParseError("empty", "empty")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise ParseError("not_json", "invalid UTF-8") from e
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates,
                         parse_constant=_reject_constant, parse_int=_int)
    except RecursionError as e:
        raise ParseError("oversize", "nesting") from e
    except json.JSONDecodeError as e:
        raise ParseError("not_json", str(e)) from e
    _check_tree(doc)
    return doc


def main():
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failures = []
    checked = 0

    valid_dir = os.path.join(EVENTS, "valid")
    valid_files = sorted(n for n in os.listdir(valid_dir) if n.endswith(".json"))
    examples = [os.path.join(MPARTICLE_EXAMPLES, n) for n in
                ("AudienceMembershipChangeRequest.json", "AudienceSubscriptionRequest.json")]
    for path in [os.path.join(valid_dir, n) for n in valid_files] + examples:
        with open(path, "rb") as f:
            data = f.read()
        checked += 1
        try:
            doc = worker_parse(data)
        except ParseError as e:
            failures.append(f"{path}: does not parse: {e}")
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for err in errors[:3]:
            failures.append(f"{path}: {list(err.absolute_path)}: {err.message[:200]}")

    invalid_dir = os.path.join(EVENTS, "invalid")
    invalid_files = sorted(n for n in os.listdir(invalid_dir) if n.endswith(".json"))
    for name in invalid_files:
        reason = name.split("__", 1)[0]
        with open(os.path.join(invalid_dir, name), "rb") as f:
            data = f.read()
        checked += 1
        try:
            doc = worker_parse(data)
        except ParseError as e:
            if e.kind != reason:
                failures.append(f"{name}: parse rejects it as {e.kind} ({e}), expected {reason}")
            continue
        if reason in ("empty", "not_json"):
            failures.append(f"{name}: parses, but {reason} is a parse-level reason")
            continue
        accepted = validator.is_valid(doc)
        if name in NOT_EXPRESSIBLE:
            if not accepted:
                failures.append(f"{name}: listed as not expressible, but the schema rejects it")
        elif accepted:
            failures.append(f"{name}: the schema accepts it (expected {reason})")

    for name in NOT_EXPRESSIBLE:
        if name not in invalid_files:
            failures.append(f"{name}: listed in NOT_EXPRESSIBLE but missing")
    if len(valid_files) < 10 or len(invalid_files) < 25:
        failures.append(f"too few fixtures: {len(valid_files)} valid, {len(invalid_files)} invalid")

    for line in failures:
        print("FAIL " + line)
    print(f"{checked} files checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
