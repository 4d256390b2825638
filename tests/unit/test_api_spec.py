#!/usr/bin/env python3
"""The Klaviyo API table (worker/klaviyo/api.c) against the vendored OpenAPI spec
(schemas/vendor/klaviyo/openapi-stable-2026-07-15.json), so neither can drift unnoticed:

- every row names an operation of the spec: path template + method, and its operationId;
- rate limits equal the operation's x-klaviyo-ratelimit (burst /s, steady /m, daily /d);
- page[size] maximum equals the spec's (0 when the operation is not paged), `filter` taken
  exactly where the spec has that parameter;
- per-request item and byte limits equal the numbers in the operation's description text
  ("up to 10,000 profiles", "5MB", "100KB", ...; MB/KB decimal), and are 0 where the spec
  states none -- except the filter limits, which are ours and must fit one page;
- body budgets keep AW_API_BODY_MARGIN_PCT under the limit;
- the revision is the spec's info.version;
- no C source under worker/ (other than api.c) holds a Klaviyo path in a string literal.

Rows come from the built tool tests/tools/aw_api_dump. The test also proves it can fail: a
deliberately wrong copy of the table must be reported.

Env: AW_SOURCE_DIR (source tree), AW_BUILD_DIR (build tree holding tests/aw_api_dump)."""
import copy
import json
import os
import re
import subprocess
import sys

SRC = os.environ.get("AW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("AW_BUILD_DIR", os.path.join(SRC, "build"))
SPEC_PATH = os.path.join(SRC, "schemas", "vendor", "klaviyo", "openapi-stable-2026-07-15.json")

# Operations the worker must have in its table (a missing row is a failure).
REQUIRED = {
    "create_list", "get_lists", "get_profiles", "bulk_import_profiles",
    "get_bulk_import_profiles_job", "get_bulk_import_profiles_jobs",
    "get_errors_for_bulk_import_profiles_job", "create_or_update_profile",
    "bulk_subscribe_profiles", "bulk_unsubscribe_profiles", "add_profiles_to_list",
    "remove_profiles_from_list", "get_profiles_for_list",
}

NUM = r"([0-9][0-9,]*)"
# Per operationId: (row field, regex on the description, multiplier). Fields not listed here
# must be 0 in the row: the spec states no such limit for that operation.
DESCRIBED = {
    "bulk_import_profiles": [
        ("max_items", r"up to " + NUM + r" profiles per request", 1),
        ("max_bytes", r"maximum allowed payload size is " + NUM + r"\s*MB", 1000 * 1000),
        ("max_item_bytes", r"payload size per-profile is " + NUM + r"\s*KB", 1000),
    ],
    "create_or_update_profile": [
        ("max_bytes", r"maximum allowed payload size is " + NUM + r"\s*KB", 1000),
        # one profile per request: the operation's body is one resource object
    ],
    "bulk_subscribe_profiles": [
        ("max_items", r"Maximum number of profiles can be submitted for subscription: " + NUM, 1),
    ],
    "bulk_unsubscribe_profiles": [
        ("max_items", r"Maximum number of profiles per call: " + NUM, 1),
    ],
    "add_profiles_to_list": [
        ("max_items", r"accepts a maximum of " + NUM + r" profiles per call", 1),
    ],
    "remove_profiles_from_list": [
        ("max_items", r"accepts a maximum of " + NUM + r" profiles per call", 1),
    ],
}
# Limits that are ours, not the spec's (checked for consistency instead).
OURS = {"create_or_update_profile": {"max_items"}, "get_profiles": {"filter_max_values", "filter_max_bytes"}}
LIMIT_FIELDS = ("max_items", "max_bytes", "max_item_bytes", "filter_max_values", "filter_max_bytes")
RATE = {"burst": ("burst_per_s", "s"), "steady": ("steady_per_min", "m"), "daily": ("daily", "d")}


def find_tool(name):
    for root, _dirs, files in os.walk(os.path.join(BUILD, "tests")):
        if name in files:
            return os.path.join(root, name)
    raise SystemExit(f"{name} not found under {BUILD}/tests (build the tools first)")


def resolve(spec, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = spec
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def check_table(spec, table):
    """Returns the list of problems (empty when the table matches the spec)."""
    problems = []

    def bad(msg):
        problems.append(msg)

    if table.get("revision") != spec["info"]["version"]:
        bad(f"revision {table.get('revision')} != spec {spec['info']['version']}")
    margin = table.get("body_margin_pct", 100)
    if not 0 < margin < 100:
        bad(f"body margin {margin} % leaves no margin")
    rows = table.get("operations", [])
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names):
        bad(f"duplicate rows: {names}")
    if set(names) != REQUIRED:
        bad(f"rows {sorted(set(names))} != required {sorted(REQUIRED)}")
    for i, r in enumerate(rows):
        name = r["name"]
        if r["endpoint"] != i:
            bad(f"{name}: endpoint {r['endpoint']} at position {i}")
        op = spec["paths"].get(r["path"], {}).get(r["method"])
        if not op:
            bad(f"{name}: {r['method'].upper()} {r['path']} is not in the spec")
            continue
        if op.get("operationId") != name:
            bad(f"{name}: spec operationId of {r['method'].upper()} {r['path']} is {op.get('operationId')}")
        # rate limits
        rl = op.get("x-klaviyo-ratelimit", {})
        for key, (field, unit) in RATE.items():
            want = 0
            if key in rl:
                m = re.fullmatch(r"(\d+)/" + unit, rl[key])
                if not m:
                    bad(f"{name}: cannot read x-klaviyo-ratelimit {key}={rl[key]!r}")
                    continue
                want = int(m.group(1))
            if r[field] != want:
                bad(f"{name}: {field} {r[field]} != spec {key} {rl.get(key)}")
        if set(rl) - set(RATE):
            bad(f"{name}: spec has rate limits the table cannot hold: {sorted(set(rl) - set(RATE))}")
        # parameters
        params = {p.get("name"): p for p in (resolve(spec, p) for p in op.get("parameters", []))}
        size = params.get("page[size]")
        want_page = size["schema"].get("maximum", 0) if size else 0
        if r["page_size_max"] != want_page:
            bad(f"{name}: page_size_max {r['page_size_max']} != spec page[size] maximum {want_page}")
        if r["filterable"] != ("filter" in params):
            bad(f"{name}: filterable {r['filterable']} but spec filter parameter {'filter' in params}")
        sorts = ((params.get("sort") or {}).get("schema") or {}).get("enum") or []
        if r["sort_newest"] is not None and not (r["sort_newest"].startswith("-") and r["sort_newest"] in sorts):
            bad(f"{name}: sort_newest {r['sort_newest']!r} is not a descending sort of the spec's {sorts}")
        # path ids: the template's {...} is the spec's path parameter
        for pid in re.findall(r"\{(\w+)\}", r["path"]):
            if pid not in params or params[pid].get("in") != "path":
                bad(f"{name}: path parameter {pid} not in the spec")
        # limits from the description
        desc = op.get("description", "")
        described = {}
        for field, rx, mult in DESCRIBED.get(name, []):
            m = re.search(rx, desc)
            if not m:
                bad(f"{name}: the description no longer states {field} ({rx})")
                continue
            described[field] = int(m.group(1).replace(",", "")) * mult
        ours = OURS.get(name, set())
        for field in LIMIT_FIELDS:
            if field in described:
                if r[field] != described[field]:
                    bad(f"{name}: {field} {r[field]} != spec text {described[field]}")
            elif field not in ours and r[field] != 0:
                bad(f"{name}: {field} {r[field]} but the spec states no such limit")
        if r["max_bytes"]:
            if not 0 < r["budget_bytes"] <= r["max_bytes"] * margin // 100:
                bad(f"{name}: budget {r['budget_bytes']} not within {margin} % of {r['max_bytes']}")
        elif r["budget_bytes"]:
            bad(f"{name}: a budget without a byte limit")
        # our own limits: a lookup is answered by one page; one profile per profile-import
        if r["filter_max_values"] and not (r["filterable"] and r["filter_max_values"] <= r["page_size_max"]):
            bad(f"{name}: filter_max_values {r['filter_max_values']} exceeds one page")
        if name == "create_or_update_profile" and r["max_items"] != 1:
            bad(f"{name}: one profile per request, table says {r['max_items']}")
    return problems


STRING_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"')
COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def hard_coded_paths():
    """(file, literal) for every C string literal naming a Klaviyo path outside api.c."""
    hits = []
    for top in ("worker", os.path.join("tests", "tools")):
        for root, _dirs, files in os.walk(os.path.join(SRC, top)):
            for fn in files:
                if not fn.endswith((".c", ".h")):
                    continue
                path = os.path.join(root, fn)
                rel = os.path.relpath(path, SRC)
                if rel == os.path.join("worker", "klaviyo", "api.c"):
                    continue
                with open(path, encoding="utf-8") as f:
                    code = COMMENT_RE.sub(" ", f.read())
                for lit in STRING_RE.findall(code):
                    if "/api/" in lit or "page%5B" in lit or "page[size]" in lit:
                        hits.append((rel, lit))
    return hits


def main():
    with open(SPEC_PATH, encoding="utf-8") as f:
        spec = json.load(f)
    out = subprocess.run([find_tool("aw_api_dump")], check=False, capture_output=True, text=True)
    failures = 0
    if out.returncode != 0:
        print(f"FAIL: aw_api_dump exited {out.returncode}: {out.stderr.strip()}", file=sys.stderr)
        return 1
    table = json.loads(out.stdout)
    for p in check_table(spec, table):
        failures += 1
        print("FAIL:", p, file=sys.stderr)
    for rel, lit in hard_coded_paths():
        failures += 1
        print(f"FAIL: {rel} hard-codes a Klaviyo path or query: {lit} (use worker/klaviyo/api.h)",
              file=sys.stderr)

    # The check can fail: each deliberately wrong table must be reported.
    mutations = []
    for name, field, delta in (("bulk_import_profiles", "max_items", 1),
                               ("bulk_import_profiles", "max_bytes", 1),
                               ("bulk_import_profiles", "budget_bytes", 500000),
                               ("get_bulk_import_profiles_job", "burst_per_s", 1),
                               ("create_list", "daily", -1),
                               ("get_lists", "page_size_max", 90),
                               ("bulk_unsubscribe_profiles", "max_items", 900),
                               ("get_profiles", "filter_max_values", 1),
                               ("get_errors_for_bulk_import_profiles_job", "steady_per_min", 600)):
        t = copy.deepcopy(table)
        row = next(r for r in t["operations"] if r["name"] == name)
        row[field] += delta
        mutations.append((f"{name}.{field}{delta:+}", t))
    t = copy.deepcopy(table)
    next(r for r in t["operations"] if r["name"] == "remove_profiles_from_list")["method"] = "post"
    mutations.append(("remove_profiles_from_list.method", t))
    t = copy.deepcopy(table)
    t["operations"].pop()
    mutations.append(("missing row", t))
    for label, t in mutations:
        if not check_table(spec, t):
            failures += 1
            print(f"FAIL: wrong table ({label}) was accepted", file=sys.stderr)

    print(f"{len(table['operations'])} operations checked against the spec, "
          f"{len(mutations)} wrong tables rejected, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
