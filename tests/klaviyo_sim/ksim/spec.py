"""The vendored Klaviyo OpenAPI spec, loaded once: `$ref`s resolved, and for each served operation
its path pattern, rate limits (x-klaviyo-ratelimit), query parameters, filter fields, page sizes
and compiled request/response validators. Every other path of the spec is kept for 501 vs 405
vs 404."""

import json
import os
import re
import threading

from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator, oas30_format_checker

JSONAPI = "application/vnd.api+json"

SPEC_REL = os.path.join("schemas", "vendor", "klaviyo", "openapi-stable-2026-07-15.json")


def default_spec_path():
    """The spec vendored in this repository, found from this file's own location
    (tests/klaviyo_sim/ksim/ is three levels below the root), so no environment is needed."""
    root = os.path.abspath(__file__)
    for _ in range(4):   # ksim/spec.py -> ksim -> klaviyo_sim -> tests -> the root
        root = os.path.dirname(root)
    return os.path.join(root, SPEC_REL)


class SpecError(Exception):
    pass


def _resolve(spec, node, stack):
    """Inline every #/components/... $ref (spec subset used here is acyclic; cycles raise).
    OpenAPI 3.0 ignores $ref siblings, but Klaviyo writes `nullable: true` beside refs and
    means it, so that sibling is kept."""
    if isinstance(node, list):
        return [_resolve(spec, x, stack) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise SpecError("external $ref not supported: " + ref)
        if ref in stack:
            raise SpecError("cyclic $ref: " + ref)
        target = spec
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        out = _resolve(spec, target, stack + (ref,))
        if isinstance(out, dict) and node.get("nullable"):
            out = dict(out)
            out["nullable"] = True
        return out
    return {k: _resolve(spec, v, stack) for k, v in node.items()}


def _parse_rate(text):
    """'75/s' -> (75, 1.0); '750/m' -> (750, 60.0); '150/d' -> (150, 86400.0)."""
    n, unit = text.split("/")
    return int(n), {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[unit]


def _parse_filter_fields(desc):
    """Allowed filter fields/operators from the parameter description of the spec."""
    out = {}
    for field, ops in re.findall(r"`([^`]+)`: ((?:`[a-z-]+`(?:, )?)+)", desc or ""):
        out[field] = set(re.findall(r"`([a-z-]+)`", ops))
    return out


class Operation:
    """One served operation: spec data pre-resolved, validators compiled once."""

    def __init__(self, spec, method, template, handler_name):
        item = spec["paths"][template]
        op = item[method]
        self.method = method.upper()
        self.template = template
        self.op_id = op["operationId"]
        self.handler_name = handler_name
        self.regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")
        rl = op.get("x-klaviyo-ratelimit", {})
        self.limits = {k: _parse_rate(v) for k, v in rl.items()}
        self.query_params = {}
        self.filter_fields = {}
        for p in _resolve(spec, op.get("parameters", []), ()):
            if p.get("in") == "query":
                self.query_params[p["name"]] = p
                if p["name"] == "filter":
                    self.filter_fields = _parse_filter_fields(p.get("description"))
        self.page_default = 20
        self.page_max = 100
        ps = self.query_params.get("page[size]")
        if ps:
            self.page_default = ps["schema"].get("default", 20)
            self.page_max = ps["schema"].get("maximum", 100)
        rb = op.get("requestBody")
        self.body_required = bool(rb and rb.get("required"))
        self.body_validator = None
        if rb and rb.get("content"):
            media = rb["content"].get(JSONAPI) or next(iter(rb["content"].values()))
            schema = _resolve(spec, media["schema"], ())
            self.body_validator = OAS30WriteValidator(schema, format_checker=oas30_format_checker)
        self._responses = _resolve(spec, op.get("responses", {}), ())
        self._resp_validators = {}
        self._lock = threading.Lock()

    def response_validator(self, status):
        """Compiled validator for a response status (exact, then 4XX/5XX), or None."""
        with self._lock:
            if status in self._resp_validators:
                return self._resp_validators[status]
            r = self._responses.get(str(status)) or self._responses.get("%dXX" % (status // 100))
            v = None
            if r and r.get("content"):
                media = r["content"].get(JSONAPI) or next(iter(r["content"].values()))
                v = OAS30ReadValidator(media["schema"], format_checker=oas30_format_checker)
            self._resp_validators[status] = v
            return v


SERVED = [
    ("get", "/api/lists", "get_lists"),
    ("post", "/api/lists", "create_list"),
    ("get", "/api/lists/{id}", "get_list"),
    ("get", "/api/lists/{id}/relationships/profiles", "get_list_profile_ids"),
    ("post", "/api/lists/{id}/relationships/profiles", "add_list_profiles"),
    ("delete", "/api/lists/{id}/relationships/profiles", "remove_list_profiles"),
    ("get", "/api/lists/{id}/profiles", "get_list_profiles"),
    ("get", "/api/profiles", "get_profiles"),
    ("post", "/api/profile-import", "profile_import"),
    ("get", "/api/profile-bulk-import-jobs", "get_import_jobs"),
    ("post", "/api/profile-bulk-import-jobs", "create_import_job"),
    ("get", "/api/profile-bulk-import-jobs/{job_id}", "get_import_job"),
    ("get", "/api/profile-bulk-import-jobs/{id}/import-errors", "get_import_errors"),
    ("post", "/api/profile-subscription-bulk-create-jobs", "subscribe"),
    ("post", "/api/profile-subscription-bulk-delete-jobs", "unsubscribe"),
]


class Spec:
    """The loaded spec: served operations plus every other path (for 404 vs 501 vs 405)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            raw = json.load(f)
        self.version = raw["info"]["version"]
        self.ops = [Operation(raw, m, t, h) for m, t, h in SERVED]
        self.by_id = {o.op_id: o for o in self.ops}
        self.other_paths = []
        for tmpl, item in raw["paths"].items():
            rx = re.compile("^" + re.sub(r"\{(\w+)\}", r"[^/]+", tmpl) + "$")
            methods = {m.upper() for m in item if m in ("get", "post", "patch", "delete", "put")}
            self.other_paths.append((rx, methods))

    def match(self, method, path):
        """-> (Operation, path params) | ('405'|'501'|'404', None)."""
        allowed = set()
        for op in self.ops:
            m = op.regex.match(path)
            if m:
                if op.method == method:
                    return op, m.groupdict()
                allowed.add(op.method)
        for rx, methods in self.other_paths:
            if rx.match(path):
                if method in methods:
                    return "501", None
                allowed |= methods
        return ("405" if allowed else "404"), None
