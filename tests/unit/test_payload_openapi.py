#!/usr/bin/env python3
"""Every Klaviyo request body build.c builds validates against its operation's requestBody
schema in Klaviyo's OpenAPI spec (revision 2026-07-15), resolved with $ref and validated by
openapi_schema_validator's OAS30Validator (format checks on). Bodies come from the built tool
tests/tools/aw_payload_dump; they must also equal the reviewed fixtures in tests/data/payloads/.
The test also proves the validator rejects deliberately broken bodies, so it can fail.

The spec is the vendored copy, schemas/vendor/klaviyo/openapi-stable-2026-07-15.json.
Env: AW_SOURCE_DIR (source tree), AW_BUILD_DIR (build tree holding tests/aw_payload_dump).
Set AW_PAYLOAD_FIXTURES_WRITE=1 to rewrite the fixtures from the tool (review the diff!)."""
import copy
import json
import os
import subprocess
import sys

from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SRC = os.environ.get("AW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("AW_BUILD_DIR", os.path.join(SRC, "build"))
SPEC_PATH = os.path.join(SRC, "schemas", "vendor", "klaviyo", "openapi-stable-2026-07-15.json")
FIXTURES = os.path.join(SRC, "tests", "data", "payloads")
SPEC_URI = "urn:klaviyo:openapi-2026-07-15"

# Every kind the tool must print (a missing kind is a failure, not a skip).
EXPECTED_KINDS = {
    "import_with_list", "import_without_list", "profile_import_clear", "subscribe",
    "unsubscribe", "list_members_add", "list_members_remove", "create_list",
}

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg, file=sys.stderr)


def find_tool():
    for root, _dirs, files in os.walk(os.path.join(BUILD, "tests")):
        if "aw_payload_dump" in files:
            return os.path.join(root, "aw_payload_dump")
    raise SystemExit(f"aw_payload_dump not found under {BUILD}/tests (build the tools first)")


def load_spec():
    with open(SPEC_PATH, encoding="utf-8") as f:
        spec = json.load(f)
    # OpenAPI 3.0 schemas are draft-4 flavoured; the spec has no $schema, so say it explicitly.
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4))
    return spec, registry


def body_validator(spec, registry, method, path):
    op = spec["paths"][path][method]
    schema = op["requestBody"]["content"]["application/vnd.api+json"]["schema"]
    ref = schema.get("$ref")
    if ref:
        schema = {"$ref": SPEC_URI + ref}
    return OAS30Validator(schema, registry=registry, format_checker=OAS30Validator.FORMAT_CHECKER)


def errors_of(validator, body):
    return sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))


def main():
    spec, registry = load_spec()
    out = subprocess.run([find_tool()], check=False, capture_output=True, text=True)
    check(out.returncode == 0, f"aw_payload_dump exited {out.returncode}: {out.stderr.strip()}")
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    kinds = {r["kind"] for r in records}
    check(kinds == EXPECTED_KINDS, f"kinds printed {sorted(kinds)} != {sorted(EXPECTED_KINDS)}")

    write = os.environ.get("AW_PAYLOAD_FIXTURES_WRITE") == "1"
    validators = {}
    for r in records:
        key = (r["method"], r["path"])
        if key not in validators:
            validators[key] = body_validator(spec, registry, *key)
        v = validators[key]
        errs = errors_of(v, r["body"])
        check(not errs, f"{r['kind']}: {len(errs)} schema errors: " +
              "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errs[:5]))

        fixture = os.path.join(FIXTURES, r["kind"] + ".json")
        if write:
            os.makedirs(FIXTURES, exist_ok=True)
            with open(fixture, "w", encoding="utf-8") as f:
                json.dump({"method": r["method"], "path": r["path"], "body": r["body"]}, f,
                          indent=2, ensure_ascii=False)
                f.write("\n")
        try:
            with open(fixture, encoding="utf-8") as f:
                fx = json.load(f)
            check(fx["body"] == r["body"] and fx["method"] == r["method"] and fx["path"] == r["path"],
                  f"{r['kind']}: body differs from fixture {fixture}")
            check(not errors_of(v, fx["body"]), f"{r['kind']}: fixture does not validate")
        except FileNotFoundError:
            check(False, f"missing fixture {fixture}")

    # The spec's own rules the design depends on: no list relationship in consent jobs
    # (consent never changes membership), historical_import with consented_at everywhere.
    by_kind = {r["kind"]: r["body"] for r in records}
    for kind in ("subscribe", "unsubscribe"):
        if kind in by_kind:
            check("relationships" not in by_kind[kind]["data"], f"{kind}: has a relationship")
    if "subscribe" in by_kind:
        attrs = by_kind["subscribe"]["data"]["attributes"]
        check(attrs.get("historical_import") is True, "subscribe: historical_import not true")
        for p in attrs["profiles"]["data"]:
            for ch, sub in p["attributes"]["subscriptions"].items():
                check("consented_at" in sub["marketing"], f"subscribe: {ch} lacks consented_at")

    # The validator can fail: broken variants of real bodies must be rejected.
    broken = []
    if "import_with_list" in by_kind:
        b = copy.deepcopy(by_kind["import_with_list"])
        b["data"]["type"] = "profile-import-job"  # wrong enum
        broken.append(("post", "/api/profile-bulk-import-jobs", b))
        b = copy.deepcopy(by_kind["import_with_list"])
        b["data"]["attributes"]["profiles"]["data"][0]["attributes"]["first_name"] = 42
        broken.append(("post", "/api/profile-bulk-import-jobs", b))
        b = copy.deepcopy(by_kind["import_with_list"])
        b["data"]["attributes"]["profiles"]["data"][0]["meta"]["patch_properties"]["unset"] = [1]
        broken.append(("post", "/api/profile-bulk-import-jobs", b))
    if "subscribe" in by_kind:
        b = copy.deepcopy(by_kind["subscribe"])
        p = b["data"]["attributes"]["profiles"]["data"][0]["attributes"]
        p["subscriptions"]["email"]["marketing"]["consent"] = "UNSUBSCRIBED"
        broken.append(("post", "/api/profile-subscription-bulk-create-jobs", b))
        b = copy.deepcopy(by_kind["subscribe"])
        p = b["data"]["attributes"]["profiles"]["data"][0]["attributes"]
        p["subscriptions"]["email"]["marketing"]["consented_at"] = "yesterday"  # format check
        broken.append(("post", "/api/profile-subscription-bulk-create-jobs", b))
    if "unsubscribe" in by_kind:
        b = copy.deepcopy(by_kind["unsubscribe"])
        del b["data"]["attributes"]["profiles"]["data"][0]["attributes"]["subscriptions"]
        broken.append(("post", "/api/profile-subscription-bulk-delete-jobs", b))
    if "list_members_add" in by_kind:
        b = copy.deepcopy(by_kind["list_members_add"])
        del b["data"][0]["id"]
        broken.append(("post", "/api/lists/{id}/relationships/profiles", b))
    if "create_list" in by_kind:
        b = copy.deepcopy(by_kind["create_list"])
        del b["data"]["attributes"]["name"]
        broken.append(("post", "/api/lists", b))
    check(len(broken) == 8, f"only {len(broken)} broken variants built")
    for i, (method, path, b) in enumerate(broken):
        v = validators.get((method, path)) or body_validator(spec, registry, method, path)
        check(errors_of(v, b), f"broken body #{i} for {method} {path} was accepted")

    print(f"{len(records)} bodies validated, {len(broken)} broken bodies rejected, "
          f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
