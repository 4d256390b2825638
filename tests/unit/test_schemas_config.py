#!/usr/bin/env python3
"""Validates the config-file fixtures (tests/data/config/) against schemas/aw-config-file.schema.json:
every valid/*.json must pass, every invalid/*.json must fail. test_config_file.c checks that the C
loader agrees on the same files, so schema and loader cannot drift apart silently."""
import glob
import json
import os
import sys

import jsonschema

ROOT = os.environ.get("AW_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")


def main():
    with open(os.path.join(ROOT, "schemas", "aw-config-file.schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failures = 0
    counts = {"valid": 0, "invalid": 0}
    for kind in ("valid", "invalid"):
        files = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "config", kind, "*.json")))
        if not files:
            print(f"no {kind} config fixtures")
            failures += 1
        for path in files:
            counts[kind] += 1
            with open(path) as f:
                doc = json.load(f)
            errors = list(validator.iter_errors(doc))
            name = os.path.relpath(path, ROOT)
            if kind == "valid" and errors:
                failures += 1
                print(f"FAIL {name}: should be valid: {errors[0].message}")
            elif kind == "invalid" and not errors:
                failures += 1
                print(f"FAIL {name}: should be invalid")
            else:
                print(f"ok   {name}")
    # The display names documented in docs/design.md §2 are accepted; near misses are not.
    for good in ("None", "", "customer", "Customer Id", "other", "Other 2", "other10", "Other ID 3"):
        if list(validator.iter_errors({"1": {"alternateIdentifier": good}})):
            failures += 1
            print(f"FAIL alternateIdentifier {good!r} should be accepted")
    for bad in ("facebook", "other1", "other11", "email"):
        if not list(validator.iter_errors({"1": {"alternateIdentifier": bad}})):
            failures += 1
            print(f"FAIL alternateIdentifier {bad!r} should be refused")
    for good in ("mobile_number", "Mobile Number", "phone_number_2", "Phone Number 3"):
        if list(validator.iter_errors({"1": {"phoneIdentifier": good}})):
            failures += 1
            print(f"FAIL phoneIdentifier {good!r} should be accepted")
    for bad in ("fax", "phone_number_4"):
        if not list(validator.iter_errors({"1": {"phoneIdentifier": bad}})):
            failures += 1
            print(f"FAIL phoneIdentifier {bad!r} should be refused")
    print(f"{counts['valid']} valid, {counts['invalid']} invalid fixtures, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
