#!/usr/bin/env python3
"""Klaviyo API simulator for audience-worker tests and the local stack.

Serves the subset of Klaviyo's REST API the worker uses (docs/design.md section 5) on loopback,
validates every request against Klaviyo's published OpenAPI spec (revision 2026-07-15, vendored
in schemas/vendor/klaviyo/openapi-stable-2026-07-15.json), enforces the spec's rate limits
(x-klaviyo-ratelimit) and payload limits, runs bulk jobs asynchronously, keeps list/profile
state for assertions and injects faults on demand. See README.md next to this file.

Python 3.11 standard library + jsonschema/openapi-schema-validator only.
"""

import argparse
import base64
import copy
import json
import math
import os
import random
import re
import signal
import socket
import string
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator, oas30_format_checker

JSONAPI = "application/vnd.api+json"
MAX_BODY = 10 * 1024 * 1024          # hard cap on any request body we read
IMPORT_MAX_BYTES = 5 * 1024 * 1024   # bulk_import_profiles description: 5MB payload
IMPORT_MAX_PROFILES = 10000          # bulk_import_profiles description: up to 10,000 profiles
PROFILE_MAX_BYTES = 100 * 1024       # "maximum allowed payload size per-profile is 100KB"
RELATIONSHIP_MAX_IDS = 1000          # add/remove_profiles_*_list: maximum of 1000 profiles per call
SUBSCRIBE_MAX = 1000                 # bulk_subscribe_profiles: maximum number of profiles 1000
UNSUBSCRIBE_MAX = 100                # bulk_unsubscribe_profiles: maximum per call 100
FILTER_MAX_VALUES = 100              # any(...) list size (docs/design.md section 5; not stated in the spec)
EMAIL_RE = re.compile(r"^[^@\s\"<>(),;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
REVISION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[A-Za-z0-9_-]+)?$")


def now_iso(t=None):
    """ISO 8601 UTC timestamp as Klaviyo renders it."""
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc).isoformat(timespec="seconds")


SPEC_REL = os.path.join("schemas", "vendor", "klaviyo", "openapi-stable-2026-07-15.json")


def default_spec_path():
    """The spec vendored in this repository, found from this file's own location
    (tests/klaviyo_sim/ is two levels below the root), so no environment is needed."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, SPEC_REL)


# ---------------------------------------------------------------------------------------------
# Spec loading: resolve $ref once, compile validators once per operation.
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

class ApiError(Exception):
    """A Klaviyo-format error response."""

    def __init__(self, status, code, title, detail, pointer=None, parameter=None, headers=None, more=None):
        super().__init__(detail)
        self.status = status
        self.headers = headers or {}
        self.errors = [self.entry(status, code, title, detail, pointer, parameter)] + (more or [])

    @staticmethod
    def entry(status, code, title, detail, pointer=None, parameter=None):
        e = {"id": str(uuid.uuid4()), "status": status, "code": code, "title": title,
             "detail": detail, "source": {}, "links": {}, "meta": {}}
        if pointer is not None:
            e["source"]["pointer"] = pointer
        if parameter is not None:
            e["source"]["parameter"] = parameter
        return e

    def body(self):
        return {"errors": self.errors}


def invalid(detail, pointer=None, parameter=None):
    return ApiError(400, "invalid", "Invalid input.", detail, pointer=pointer, parameter=parameter)


COUNT_LIMITS = {  # op -> (path to the array, max, message); checked before the (costly) schema pass
    "bulk_import_profiles": (("data", "attributes", "profiles", "data"), IMPORT_MAX_PROFILES,
                             "Accepts up to %d profiles per request."),
    "add_profiles_to_list": (("data",), RELATIONSHIP_MAX_IDS, "This endpoint accepts a maximum of %d profiles per call."),
    "remove_profiles_from_list": (("data",), RELATIONSHIP_MAX_IDS, "This endpoint accepts a maximum of %d profiles per call."),
    "bulk_subscribe_profiles": (("data", "attributes", "profiles", "data"), SUBSCRIBE_MAX,
                                "Maximum number of profiles per call: %d."),
    "bulk_unsubscribe_profiles": (("data", "attributes", "profiles", "data"), UNSUBSCRIBE_MAX,
                                  "Maximum number of profiles per call: %d."),
}


def precheck_counts(op, body):
    spec = COUNT_LIMITS.get(op.op_id)
    if not spec:
        return
    path, limit, msg = spec
    node = body
    for part in path:
        if not isinstance(node, dict):
            return
        node = node.get(part)
    if isinstance(node, list) and len(node) > limit:
        raise invalid(msg % limit, pointer="/" + "/".join(path))


def schema_errors(validator, body):
    """Spec validation of a request body -> list of Klaviyo error entries (values never echoed,
    so no personal data leaks into worker logs)."""
    out = []
    errs = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    for e in errs[:100]:
        path = "/" + "/".join(str(p) for p in e.absolute_path) if e.absolute_path else "/"
        if path == "/":
            path = ""
        kind = e.validator
        if kind == "required" and isinstance(e.instance, dict):
            missing = [r for r in e.validator_value if r not in e.instance]
            name = missing[0] if missing else "?"
            ptr, detail = path + "/" + name, "'%s' is a required field." % name
        elif kind == "type":
            ptr, detail = path, "Invalid type: expected %s." % json.dumps(e.validator_value)
        elif kind == "enum":
            ptr, detail = path, "Value must be one of %s." % json.dumps(e.validator_value)
        elif kind in ("oneOf", "anyOf"):
            ptr, detail = path, "Value does not match any allowed schema."
        elif kind == "format":
            ptr, detail = path, "Invalid format: expected %s." % e.validator_value
        else:
            ptr, detail = path, "Invalid value (%s %s)." % (kind, json.dumps(e.validator_value)[:80])
        out.append(ApiError.entry(400, "invalid", "Invalid input.", detail, pointer=ptr or "/"))
    return out


# ---------------------------------------------------------------------------------------------
# Filter parsing (Klaviyo JSON:API filter syntax, subset): op(field,value) joined by ',' or and()
# ---------------------------------------------------------------------------------------------

_TOK = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<punct>[(),\[\]])|(?P<word>[^\s(),\[\]"']+))""")


def _unquote(s):
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def parse_filter(text, allowed):
    """-> list of (op, field, value) ANDed together. Iterative (no recursion on input)."""
    toks = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOK.match(text, pos)
        if not m or m.end() == pos:
            raise invalid("Invalid filter provided.", parameter="filter")
        pos = m.end()
        if m.group("str") is not None:
            toks.append(("s", _unquote(m.group("str"))))
        elif m.group("punct") is not None:
            toks.append(("p", m.group("punct")))
        elif m.group("word") is not None:
            toks.append(("w", m.group("word")))
    if len(toks) >= 3 and toks[0] == ("w", "and") and toks[1] == ("p", "(") and toks[-1] == ("p", ")"):
        toks = toks[2:-1]
    out = []
    i = 0

    def want(kind, val=None):
        nonlocal i
        if i >= len(toks) or toks[i][0] != kind or (val is not None and toks[i][1] != val):
            raise invalid("Invalid filter provided.", parameter="filter")
        i += 1
        return toks[i - 1][1]

    def scalar():
        nonlocal i
        if i < len(toks) and toks[i][0] in ("s", "w"):
            i += 1
            k, v = toks[i - 1]
            if k == "w":
                return {"true": True, "false": False, "null": None}.get(v, v)
            return v
        raise invalid("Invalid filter provided.", parameter="filter")

    while i < len(toks):
        op = want("w")
        want("p", "(")
        field = want("w")
        want("p", ",")
        if i < len(toks) and toks[i] == ("p", "["):
            i += 1
            vals = []
            while i < len(toks) and toks[i] != ("p", "]"):
                vals.append(scalar())
                if i < len(toks) and toks[i] == ("p", ","):
                    i += 1
            want("p", "]")
            value = vals
        else:
            value = scalar()
        want("p", ")")
        if i < len(toks):
            want("p", ",")
        if field not in allowed or op not in allowed[field]:
            raise invalid("'%s' is not a valid filter operator for field '%s'." % (op, field) if field in allowed
                          else "'%s' is not a valid field for the resource." % field, parameter="filter")
        if op == "any":
            if not isinstance(value, list):
                raise invalid("'any' requires a list of values.", parameter="filter")
            if len(value) > FILTER_MAX_VALUES:
                raise invalid("Filter 'any' accepts at most %d values." % FILTER_MAX_VALUES, parameter="filter")
        elif op == "equals" and isinstance(value, list):
            if len(value) != 1:
                raise invalid("'equals' requires a single value.", parameter="filter")
            value = value[0]
        out.append((op, field, value))
    return out


def filter_match(conds, rec):
    for op, field, value in conds:
        have = rec.get(field)
        if field == "email":
            have = (have or "").lower()
            value = [str(v).lower() for v in value] if isinstance(value, list) else str(value).lower()
        if op == "equals" and have != value:
            return False
        if op == "any" and have not in value:
            return False
    return True


def without_nulls(rec):
    """A bulk-import record as Klaviyo applies it: "The Bulk Import Profiles API does not support
    setting fields to null to clear them. Only fields explicitly provided with non-null values
    will be updated" (Klaviyo's bulk import guide). Nulls are dropped from the attributes and
    from location/properties; clearing goes through profile-import (null clears) or, for
    properties, meta.patch_properties.unset."""
    attrs = rec.get("attributes")
    if not isinstance(attrs, dict):
        return rec
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if k in ("location", "properties") and isinstance(v, dict):
            v = {pk: pv for pk, pv in v.items() if pv is not None}
        out[k] = v
    rec = dict(rec)
    rec["attributes"] = out
    return rec


# ---------------------------------------------------------------------------------------------
# Simulator state and behaviour
# ---------------------------------------------------------------------------------------------

DEFAULT_CONFIG = {
    "job_queued_s": 0.2,          # time a job stays `queued`
    "job_processing_s": 0.2,      # time a job stays `processing` before it is applied
    "job_jitter_s": 0.0,          # extra processing time per job, uniform in [0, this]: jobs end
                                  # late and out of order (Klaviyo runs them concurrently)
    "bulk_import_nulls": "ignore",  # "ignore": a null in a bulk import changes nothing (Klaviyo's
                                  # documented behaviour); "clear": null clears, as profile-import
    "time_scale": 1.0,            # multiplies rate-limit window lengths (1 s, 60 s, 1 d)
    "rate_limit_scale": 1.0,      # multiplies rate-limit counts (min 1)
    "rate_limits": True,          # False disables rate limiting entirely
    "rate_limit_overrides": {},   # {"create_list": {"burst": 1, "steady": 5, "daily": 3}}
    "accounts": {},               # API key -> account id; keys not listed are an account each.
                                  # Rate limits are per (account, operation), as Klaviyo's
    "other_usage": {},            # {account|key|"*": {op_id|"*": requests/s}}: another integration
                                  # spending the same account's burst and steady quota
    "max_url_bytes": 8192,        # a longer request target (path + query) gets 414
    "api_keys": None,             # None: any non-empty key is valid; else the allowlist
    "revisions": [],              # extra accepted revisions besides the spec's own
    "strict_content_type": False, # True: only application/vnd.api+json (else also application/json)
    "check_responses": False,     # validate our own responses against the spec's schemas
    "seed": 1,                    # RNG seed for faults and ids
}

FAULT_KEYS = {"error_rate_5xx", "status", "error_after_apply", "storm_429", "slow_ms",
              "drop_connections", "drop_after_apply", "unauthorized_keys", "paths"}
DROP_AFTER_APPLY_KEYS = {"count", "rate", "ops", "paths"}


class Sim:
    """All mutable state, guarded by one lock."""

    def __init__(self, spec, config=None):
        self.spec = spec
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.base_config = dict(DEFAULT_CONFIG)
        self.base_config.update(config or {})
        self.config = copy.deepcopy(self.base_config)
        self.generation = 0
        self._reset_locked()
        self.stopping = False
        self.job_thread = threading.Thread(target=self._job_loop, name="klaviyo-sim-jobs", daemon=True)
        self.job_thread.start()

    # -- state -------------------------------------------------------------------------------
    def _reset_locked(self):
        self.rng = random.Random(self.config.get("seed", 1))
        self.job_rng = random.Random("jobs-%s" % self.config.get("seed", 1))
        self.jobs_applied = 0    # jobs applied so far (their applied_seq)
        self.profiles = {}       # id -> profile dict
        self.by_email = {}       # lower email -> id
        self.by_phone = {}
        self.by_external = {}
        self.lists = {}          # id -> {"id","name","created","updated","opt_in_process","members":[ids]}
        self.jobs = {}           # id -> job
        self.job_order = []
        self.job_queue = []      # job ids not yet applied, FIFO
        self.rate = {}           # (key, op_id, window_name) -> (window_index, count)
        self.faults = {}
        self.req_counts = {}     # "op_id" -> {"status": n}
        self.throttled = {}      # op_id -> n
        self.faults_injected = {}
        self.recent = []         # last 200 requests (no secrets, no bodies)
        self.response_violations = []
        self.generation += 1
        self.epoch = time.monotonic()   # rate-limit windows are aligned to the last reset

    def reset(self, config_too=False):
        with self.lock:
            if config_too:
                self.config = copy.deepcopy(self.base_config)
            self._reset_locked()
            self.cond.notify_all()

    def new_id(self, kind):
        if kind == "profile":
            return "01" + "".join(self.rng.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(24))
        if kind == "list":
            while True:
                i = "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(6))
                if i not in self.lists:
                    return i
        return "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(32))

    # -- rate limiting -----------------------------------------------------------------------
    def account_of(self, key):
        """The account an API key belongs to (config `accounts`), else the key itself."""
        return (self.config.get("accounts") or {}).get(key, key)

    def other_rps(self, account, key, op_id):
        """Requests per second another integration spends on (account, operation)."""
        usage = self.config.get("other_usage") or {}
        for who in (account, key, "*"):
            per_op = usage.get(who)
            if isinstance(per_op, dict):
                for o in (op_id, "*"):
                    if o in per_op:
                        return max(0.0, float(per_op[o]))
        return 0.0

    def rate_check(self, key, op):
        """Fixed windows per (account, operation) as Klaviyo documents: burst (1 s), steady
        (60 s), daily where the spec has one. Another integration's usage (other_usage) fills the
        burst and steady windows of the same account at a constant rate. -> (ok, headers): on
        success the RateLimit-* headers of the steady window, else Retry-After only."""
        cfg = self.config
        limits = dict(op.limits)
        overrides = (cfg.get("rate_limit_overrides") or {}).get(op.op_id, {})
        for name, n in overrides.items():
            limits[name] = (int(n), limits.get(name, (0, {"burst": 1.0, "steady": 60.0, "daily": 86400.0}[name]))[1])
        if not cfg.get("rate_limits", True) or not limits:
            return True, {}
        account = self.account_of(key)
        rps = self.other_rps(account, key, op.op_id)
        now = time.monotonic() - self.epoch
        ts = float(cfg.get("time_scale", 1.0)) or 1.0
        scale = float(cfg.get("rate_limit_scale", 1.0))
        state = []
        for name, (n, window) in limits.items():
            if name not in overrides:
                n = max(1, int(n * scale))
            w = window * ts
            idx = int(now // w)
            cur = self.rate.get((account, op.op_id, name))
            own = cur[1] if cur and cur[0] == idx else 0
            other = min(n, int(rps * (now - idx * w))) if name in ("burst", "steady") else 0
            reset = (idx + 1) * w - now
            state.append((name, n, idx, own, own + other, reset))
        over = [st for st in state if st[4] >= st[1]]
        if over:
            wait = max(st[5] for st in over)
            self.throttled[op.op_id] = self.throttled.get(op.op_id, 0) + 1
            return False, {"Retry-After": str(max(1, math.ceil(wait)))}
        for name, n, idx, own, used, reset in state:
            self.rate[(account, op.op_id, name)] = (idx, own + 1)
        steady = next((st for st in state if st[0] == "steady"), state[0])
        return True, {"RateLimit-Limit": str(steady[1]),
                      "RateLimit-Remaining": str(max(0, steady[1] - steady[4] - 1)),
                      "RateLimit-Reset": str(max(0, math.ceil(steady[5])))}

    # -- profiles ----------------------------------------------------------------------------
    def _index(self, p, field, old=None):
        idx = {"email": self.by_email, "phone_number": self.by_phone, "external_id": self.by_external}[field]
        if old:
            k = old.lower() if field == "email" else old
            if idx.get(k) == p["id"]:
                del idx[k]
        v = p.get(field)
        if v:
            idx[v.lower() if field == "email" else v] = p["id"]

    def find_profile(self, attrs, pid=None):
        """Klaviyo identity rules, simplified: id, then email, then phone_number, then external_id."""
        if pid:
            return self.profiles.get(pid)
        for field, idx in (("email", self.by_email), ("phone_number", self.by_phone),
                           ("external_id", self.by_external)):
            v = attrs.get(field)
            if v:
                found = idx.get(v.lower() if field == "email" else v)
                if found:
                    return self.profiles[found]
        return None

    def new_profile(self):
        t = now_iso()
        p = {"id": self.new_id("profile"), "email": None, "phone_number": None, "external_id": None,
             "first_name": None, "last_name": None, "organization": None, "locale": None, "title": None,
             "image": None, "created": t, "updated": t, "last_event_date": None, "location": {},
             "properties": {}, "subscriptions": {}}
        self.profiles[p["id"]] = p
        return p

    def identifier_conflict(self, p, attrs):
        """Field name whose value already belongs to another profile, else None."""
        for field, idx in (("email", self.by_email), ("phone_number", self.by_phone),
                           ("external_id", self.by_external)):
            v = attrs.get(field)
            if v:
                other = idx.get(v.lower() if field == "email" else v)
                if other and (p is None or other != p["id"]):
                    return field
        return None

    def apply_profile_attrs(self, p, attrs, meta):
        """Upsert semantics of profile-import: absent = unchanged, null = cleared (also a key of
        location/properties); location/properties merged."""
        for field in ("email", "phone_number", "external_id"):
            if field in attrs:
                old = p.get(field)
                p[field] = attrs[field]
                self._index(p, field, old)
        for field in ("first_name", "last_name", "organization", "locale", "title", "image", "_kx"):
            if field in attrs:
                p[field] = attrs[field]
        for field in ("location", "properties"):
            if field not in attrs:
                continue
            if attrs[field] is None:
                p[field] = {}
                continue
            for k, v in attrs[field].items():
                if v is None:
                    p[field].pop(k, None)
                else:
                    p[field][k] = v
        pp = (meta or {}).get("patch_properties") or {}
        unset = pp.get("unset")
        if unset is not None:
            for k in [unset] if isinstance(unset, str) else unset:
                p["properties"].pop(k, None)
        for k, v in (pp.get("append") or {}).items():
            cur = p["properties"].get(k)
            cur = [] if cur is None else (cur if isinstance(cur, list) else [cur])
            cur.extend(v if isinstance(v, list) else [v])
            p["properties"][k] = cur
        for k, v in (pp.get("unappend") or {}).items():
            cur = p["properties"].get(k)
            if isinstance(cur, list):
                drop = v if isinstance(v, list) else [v]
                p["properties"][k] = [x for x in cur if x not in drop]
        p["updated"] = now_iso()

    def profile_record_errors(self, rec, base):
        """Per-record data checks of a bulk import (reported as import-errors, not 400)."""
        attrs = rec.get("attributes") or {}
        errs = []
        if len(json.dumps(rec)) > PROFILE_MAX_BYTES:
            errs.append((base, "Profile payload exceeds 100KB."))
        email = attrs.get("email")
        if email is not None and not EMAIL_RE.match(email):
            errs.append((base + "/attributes/email", "Invalid email address."))
        phone = attrs.get("phone_number")
        if phone is not None and not E164_RE.match(phone):
            errs.append((base + "/attributes/phone_number", "Invalid phone number format (E.164 required)."))
        if not rec.get("id") and not any(attrs.get(f) for f in ("email", "phone_number", "external_id")):
            errs.append((base + "/attributes", "A profile requires at least one identifier: email, phone_number or external_id."))
        return errs

    def upsert_record(self, rec):
        """-> (profile, created) or raises ValueError(field) on identifier conflict."""
        attrs = rec.get("attributes") or {}
        p = self.find_profile(attrs, rec.get("id"))
        if rec.get("id") and p is None:
            raise KeyError("id")
        conflict = self.identifier_conflict(p, attrs)
        if conflict:
            raise ValueError(conflict)
        created = p is None
        if created:
            p = self.new_profile()
        self.apply_profile_attrs(p, attrs, rec.get("meta"))
        return p, created

    def add_members(self, lst, pids):
        have = set(lst["members"])
        t = now_iso()
        for pid in pids:
            if pid not in have:
                lst["members"].append(pid)
                lst["joined"][pid] = t
                have.add(pid)
        lst["updated"] = t

    # -- jobs --------------------------------------------------------------------------------
    def enqueue_job(self, job):
        """Schedules a job: `queued` for job_queued_s, then `processing` for job_processing_s
        plus a random extra of up to job_jitter_s, then applied. Jobs run concurrently, so with
        jitter a later job can finish first, as on Klaviyo."""
        cfg = self.config
        jitter = float(cfg.get("job_jitter_s", 0) or 0)
        job["_start_at"] = job["_created"] + float(cfg.get("job_queued_s", 0))
        job["_done_at"] = job["_start_at"] + float(cfg.get("job_processing_s", 0)) + \
            (self.job_rng.uniform(0, jitter) if jitter > 0 else 0.0)
        self.jobs[job["id"]] = job
        self.job_order.append(job["id"])
        self.job_queue.append(job["id"])
        self.cond.notify_all()

    def _job_loop(self):
        with self.lock:
            while not self.stopping:
                now = time.time()
                wake = now + 0.5
                due = []
                for jid in self.job_queue:
                    job = self.jobs[jid]
                    if job["status"] == "queued":
                        if now < job["_start_at"]:
                            wake = min(wake, job["_start_at"])
                            continue
                        job["status"] = "processing"
                        job["started_at"] = now_iso(now)
                    if now < job["_done_at"]:
                        wake = min(wake, job["_done_at"])
                    else:
                        due.append(job)
                # Equal end times keep the submission order (job_queue is in that order).
                due.sort(key=lambda j: j["_done_at"])
                for job in due:
                    self.job_queue.remove(job["id"])
                    try:
                        self._apply_job(job)
                    except Exception as e:  # never let the job thread die
                        job["status"] = "cancelled"
                        sys.stderr.write("klaviyo_sim: job failed: %r\n" % (e,))
                    self.jobs_applied += 1
                    job["applied_seq"] = self.jobs_applied
                    job["completed_at"] = now_iso()
                if not due:
                    self.cond.wait(max(0.0, wake - now))

    def _apply_job(self, job):
        recs = job.pop("_records")
        if job["type"] == "profile-bulk-import-job":
            if self.config.get("bulk_import_nulls", "ignore") != "clear":
                recs = [without_nulls(r) for r in recs]
            ok_ids = []
            for i, rec in enumerate(recs):
                base = "/data/attributes/profiles/data/%d" % i
                errs = self.profile_record_errors(rec, base)
                if not errs:
                    try:
                        p, _ = self.upsert_record(rec)
                        ok_ids.append(p["id"])
                        job["profile_ids"].append(p["id"])
                    except KeyError:
                        errs = [(base + "/id", "Profile not found.")]
                    except ValueError as e:
                        errs = [(base + "/attributes/" + str(e),
                                 "Another profile already has this %s." % e)]
                if errs:
                    ptr, detail = errs[0]
                    job["errors"].append({"type": "import-error", "id": str(uuid.uuid4()),
                                          "attributes": {"code": "invalid", "title": "Invalid input.",
                                                         "detail": detail, "source": {"pointer": ptr},
                                                         "original_payload": rec}})
                    job["failed_count"] += 1
                else:
                    job["completed_count"] += 1
            for lid in job["list_ids"]:
                if lid in self.lists:
                    self.add_members(self.lists[lid], ok_ids)
            job["status"] = "complete"
        elif job["type"] == "profile-subscription-bulk-create-job":
            lst = self.lists.get(job["list_ids"][0]) if job["list_ids"] else None
            for rec in recs:
                attrs = rec["attributes"]
                p = self.find_profile(attrs, rec.get("id")) or self.new_profile()
                ident = {k: attrs[k] for k in ("email", "phone_number") if attrs.get(k)}
                if not self.identifier_conflict(p, ident):
                    self.apply_profile_attrs(p, ident, None)
                for ch, params in (attrs.get("subscriptions") or {}).items():
                    mk = (params or {}).get("marketing")
                    if ch in ("email", "sms") and mk:
                        p["subscriptions"].setdefault(ch, {})["marketing"] = {
                            "consent": "SUBSCRIBED", "consented_at": mk.get("consented_at") or now_iso(),
                            "method": "API", "custom_source": job.get("custom_source"),
                            "historical_import": bool(job.get("historical_import")),
                            "list_id": lst["id"] if lst else None}
                if lst:
                    self.add_members(lst, [p["id"]])
                job["completed_count"] += 1
            job["status"] = "complete"
        else:
            lst = self.lists.get(job["list_ids"][0]) if job["list_ids"] else None
            for rec in recs:
                attrs = rec["attributes"]
                p = self.find_profile(attrs)
                if p is None:   # Klaviyo creates the profile, then unsubscribes it
                    p = self.new_profile()
                    self.apply_profile_attrs(p, {k: attrs[k] for k in ("email", "phone_number") if attrs.get(k)}, None)
                for ch, params in (attrs.get("subscriptions") or {}).items():
                    if ch in ("email", "sms") and (params or {}).get("marketing"):
                        p["subscriptions"].setdefault(ch, {})["marketing"] = {
                            "consent": "UNSUBSCRIBED", "consented_at": now_iso(), "method": "API",
                            "custom_source": None, "historical_import": False,
                            "list_id": lst["id"] if lst else None}
                if lst and p["id"] in lst["members"]:
                    lst["members"].remove(p["id"])
                    lst["joined"].pop(p["id"], None)
                job["completed_count"] += 1
            job["status"] = "complete"

    # -- dump --------------------------------------------------------------------------------
    def dump(self):
        with self.lock:
            def pub(j):
                return {k: v for k, v in j.items() if not k.startswith("_")}
            return {
                "config": self.config,
                "faults": self.faults,
                "lists": [dict(l, member_emails=[self.profiles[m]["email"] for m in l["members"] if m in self.profiles])
                          for l in self.lists.values()],
                "profiles": list(self.profiles.values()),
                "jobs": [pub(self.jobs[j]) for j in self.job_order],
                "requests": self.req_counts,
                "throttled": self.throttled,
                "faults_injected": self.faults_injected,
                "recent_requests": self.recent,
                "response_violations": self.response_violations,
            }


# ---------------------------------------------------------------------------------------------
# Resource rendering
# ---------------------------------------------------------------------------------------------

def list_resource(base, l):
    return {"type": "list", "id": l["id"],
            "attributes": {"name": l["name"], "created": l["created"], "updated": l["updated"],
                           "opt_in_process": l["opt_in_process"]},
            "relationships": {"profiles": {"links": {"self": "%s/api/lists/%s/relationships/profiles/" % (base, l["id"]),
                                                     "related": "%s/api/lists/%s/profiles/" % (base, l["id"])}}},
            "links": {"self": "%s/api/lists/%s/" % (base, l["id"])}}


def subscriptions_view(p):
    out = {}
    for ch in ("email", "sms"):
        mk = p["subscriptions"].get(ch, {}).get("marketing")
        consent = mk["consent"] if mk else "NEVER_SUBSCRIBED"
        out[ch] = {"marketing": {"can_receive_%s_marketing" % ("email" if ch == "email" else "sms"): consent == "SUBSCRIBED",
                                 "consent": consent,
                                 "consent_timestamp": mk["consented_at"] if mk else None,
                                 "method": mk["method"] if mk else None,
                                 "last_updated": mk["consented_at"] if mk else None}}
    return out


def profile_resource(base, p, with_subs=False, extra=None):
    attrs = {k: p[k] for k in ("email", "phone_number", "external_id", "first_name", "last_name",
                               "organization", "locale", "title", "image", "created", "updated",
                               "last_event_date")}
    attrs["location"] = p["location"] or None
    attrs["properties"] = p["properties"]
    if with_subs:
        attrs["subscriptions"] = subscriptions_view(p)
    attrs.update(extra or {})
    return {"type": "profile", "id": p["id"], "attributes": attrs,
            "links": {"self": "%s/api/profiles/%s/" % (base, p["id"])}}


def job_resource(base, j):
    return {"type": "profile-bulk-import-job", "id": j["id"],
            "attributes": {k: j[k] for k in ("status", "created_at", "total_count", "completed_count",
                                             "failed_count", "completed_at", "expires_at", "started_at")},
            "relationships": {"lists": {"data": [{"type": "list", "id": i} for i in j["list_ids"]],
                                        "links": {"self": "%s/api/profile-bulk-import-jobs/%s/relationships/lists/" % (base, j["id"]),
                                                  "related": "%s/api/profile-bulk-import-jobs/%s/lists/" % (base, j["id"])}}},
            "links": {"self": "%s/api/profile-bulk-import-jobs/%s/" % (base, j["id"])}}


def _enc_cursor(off):
    return base64.urlsafe_b64encode(json.dumps({"o": off}).encode()).decode().rstrip("=")


def _dec_cursor(c):
    try:
        off = json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)))["o"]
        if isinstance(off, int) and off >= 0:
            return off
    except Exception:
        pass
    raise invalid("Invalid page cursor.", parameter="page[cursor]")


def paginate(base, path, query, op, items):
    """Cursor paging with links.self/next/prev as Klaviyo returns them."""
    size = op.page_default
    if "page[size]" in query:
        try:
            size = int(query["page[size]"])
        except ValueError:
            raise invalid("page[size] must be an integer.", parameter="page[size]")
        if size < 1 or size > op.page_max:
            raise invalid("page[size] must be between 1 and %d." % op.page_max, parameter="page[size]")
    off = _dec_cursor(query["page[cursor]"]) if "page[cursor]" in query else 0
    page = items[off:off + size]

    def link(o):
        q = {k: v for k, v in query.items() if k != "page[cursor]"}
        if o is not None:
            q["page[cursor]"] = _enc_cursor(o)
        return "%s%s%s" % (base, path, ("?" + urlencode(q, quote_via=quote)) if q else "")
    links = {"self": link(off if off else None)}
    if off + size < len(items):
        links["next"] = link(off + size)
    if off > 0:
        links["prev"] = link(max(0, off - size))
    return page, links


# ---------------------------------------------------------------------------------------------
# HTTP handler
# ---------------------------------------------------------------------------------------------

class DropConnection(Exception):
    """Close the connection without an answer; applied_status is the status of a request that
    was applied before its answer was lost (drop_after_apply), else None."""

    def __init__(self, applied_status=None):
        super().__init__("dropped")
        self.applied_status = applied_status


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "klaviyo-sim/1"
    sim = None  # set by make_server

    def log_message(self, fmt, *args):  # quiet; the request log lives in /_sim/state
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_PUT(self):
        self._dispatch("PUT")

    # -- plumbing ----------------------------------------------------------------------------
    def _read_body(self, limit):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    n = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise ApiError(400, "invalid", "Invalid input.", "Malformed chunked body.")
                if n == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    break
                total += n
                if total > limit:
                    self.close_connection = True
                    raise ApiError(413, "request_too_large", "Request too large.", "Payload exceeds %d bytes." % limit)
                chunks.append(self.rfile.read(n))
                self.rfile.readline(8)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > limit:
            self.close_connection = True
            raise ApiError(413, "request_too_large", "Request too large.", "Payload exceeds %d bytes." % limit)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body=None, headers=None, ctype=JSONAPI):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _base(self):
        return "http://" + (self.headers.get("Host") or "%s:%d" % self.server.server_address[:2])

    # -- dispatch ----------------------------------------------------------------------------
    def _dispatch(self, method):
        sim = self.sim
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        if path.startswith("/_sim"):
            return self._control(method, path)
        op, params = sim.spec.match(method, path)
        label = op.op_id if isinstance(op, Operation) else "%s %s" % (method, op)
        status, body, headers = 500, None, {}
        counted = None  # the status recorded in req_counts, when it differs from the one sent
        try:
            try:
                raw = self._read_body(MAX_BODY)
            except ApiError as e:
                status, body, headers = e.status, e.body(), e.headers
                return
            max_url = int(sim.config.get("max_url_bytes") or 0)
            if max_url and len(self.path.encode("latin-1", "replace")) > max_url:
                # Klaviyo's edge refuses it before authentication or rate limiting.
                raise ApiError(414, "request_uri_too_long", "Request URI too long.",
                               "The request URL exceeds %d bytes." % max_url)
            if not isinstance(op, Operation):
                if op == "404":
                    raise ApiError(404, "not_found", "Not found.", "The requested path was not found.")
                if op == "405":
                    raise ApiError(405, "method_not_allowed", "Method not allowed.", "Method %s is not allowed." % method)
                raise ApiError(501, "not_implemented", "Not implemented.", "This endpoint is not simulated.")
            status, body, headers = self._api(op, params, method, path, query, raw, label)
        except DropConnection as d:
            counted = ("%d-dropped" % d.applied_status) if d.applied_status else None
            status = 0
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        except ApiError as e:
            status, body, headers = e.status, e.body(), e.headers
        finally:
            with sim.lock:
                key = counted or str(status)
                sim.req_counts.setdefault(label, {})
                sim.req_counts[label][key] = sim.req_counts[label].get(key, 0) + 1
                sim.recent.append({"t": now_iso(), "method": method, "path": path, "op": label,
                                   "status": status, "revision": self.headers.get("revision"),
                                   "content_type": self.headers.get("Content-Type")})
                if counted:
                    sim.recent[-1]["dropped_after_apply"] = True
                del sim.recent[:-200]
            if status:
                if sim.config.get("check_responses") and isinstance(op, Operation) and body is not None:
                    self._check_response(op, status, body)
                self._send(status, body, headers)

    def _check_response(self, op, status, body):
        v = op.response_validator(status)
        if v is None:
            return
        for e in list(v.iter_errors(body))[:5]:
            with self.sim.lock:
                self.sim.response_violations.append({"op": op.op_id, "status": status,
                                                     "path": "/" + "/".join(str(p) for p in e.absolute_path),
                                                     "message": e.message[:200]})

    # -- faults (POST /_sim/faults); callers hold no lock ------------------------------------
    def _fault_set(self, path):
        """The active fault set when it applies to path (its `paths` regex), else None.
        Caller holds sim.lock."""
        f = self.sim.faults
        if not f or (f.get("paths") and not re.search(f["paths"], path)):
            return None
        return f

    def _count_fault(self, kind):
        self.sim.faults_injected[kind] = self.sim.faults_injected.get(kind, 0) + 1

    def _fault_storm(self, path, label):
        """storm_429: the next N requests get 429 (not counted against the rate windows)."""
        sim = self.sim
        with sim.lock:
            f = self._fault_set(path)
            storm = f.get("storm_429") if f else None
            if not storm or storm.get("count", 0) <= 0:
                return
            storm["count"] -= 1
            self._count_fault("storm_429")
            sim.throttled[label] = sim.throttled.get(label, 0) + 1
            ra = str(storm.get("retry_after", 1))
        raise ApiError(429, "throttled", "Request was throttled.",
                       "Request was throttled. Expected available in %s seconds." % ra,
                       headers={"Retry-After": ra})

    def _faults_before(self, path, label):
        """drop_connections, slow_ms and error_rate_5xx. Returns the error to answer after the
        request was applied (error_after_apply), else None; raises for the other faults."""
        sim = self.sim
        with sim.lock:
            f = self._fault_set(path)
            if not f:
                return None
            if f.get("drop_connections", 0) > 0:
                f["drop_connections"] -= 1
                self._count_fault("drop_connections")
                raise DropConnection()
            slow = f.get("slow_ms", 0)
            fail = f.get("error_rate_5xx", 0) and sim.rng.random() < float(f["error_rate_5xx"])
            st = int(f.get("status", 503))
            after_apply = bool(f.get("error_after_apply"))
            if fail:
                self._count_fault("5xx")
        if slow:
            time.sleep(slow / 1000.0)
        if fail:
            err = ApiError(st, "error", "A server error occurred.", "Simulated server error.")
            if after_apply:
                return err
            raise err
        return None

    def _drop_after_apply(self, path, op):
        """drop_after_apply {count, rate, ops, paths}: True when this applied request's answer is
        to be lost (the connection closes without a response)."""
        sim = self.sim
        with sim.lock:
            d = sim.faults.get("drop_after_apply")
            if not d:
                return False
            if d.get("ops") and op.op_id not in d["ops"]:
                return False
            if d.get("paths") and not re.search(d["paths"], path):
                return False
            if d.get("count", 0) > 0:
                d["count"] -= 1
            elif not (d.get("rate") and sim.rng.random() < float(d["rate"])):
                return False
            self._count_fault("drop_after_apply")
            return True

    def _api(self, op, params, method, path, query, raw, label):
        """Order: authentication, injected 429 storm, rate limit (every answer after it carries
        the RateLimit-* headers of the steady window), revision, injected faults, body checks,
        the handler, then the after-apply faults."""
        sim = self.sim
        auth = self.headers.get("Authorization") or ""
        m = re.match(r"^Klaviyo-API-Key\s+(\S+)$", auth.strip())
        if not m:
            raise ApiError(401, "not_authenticated", "Authentication credentials were not provided.",
                           "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.")
        key = m.group(1)
        with sim.lock:
            allowed = sim.config.get("api_keys")
            bad = key in (sim.faults.get("unauthorized_keys") or [])
            if bad:
                self._count_fault("unauthorized")
        if bad or (allowed is not None and key not in allowed):
            raise ApiError(401, "not_authenticated", "Incorrect authentication credentials.",
                           "Incorrect authentication credentials.")
        self._fault_storm(path, label)
        with sim.lock:
            ok, rl_headers = sim.rate_check(key, op)
        if not ok:
            raise ApiError(429, "throttled", "Request was throttled.",
                           "Request was throttled. Expected available in %s seconds." % rl_headers["Retry-After"],
                           headers=rl_headers)
        try:
            rev = self.headers.get("revision")
            if not rev:
                raise ApiError(400, "invalid", "Invalid input.", "Missing 'revision' header.", parameter="revision")
            known = {sim.spec.version} | set(sim.config.get("revisions") or [])
            if not REVISION_RE.match(rev) or rev not in known:
                raise ApiError(400, "invalid", "Invalid input.", "Invalid or unsupported revision.", parameter="revision")
            after = self._faults_before(path, label)
            body = None
            if op.body_validator is not None:
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                accepted = {JSONAPI} if sim.config.get("strict_content_type") else {JSONAPI, "application/json"}
                if not raw and op.body_required:
                    raise invalid("A request body is required.", pointer="/data")
                if ctype not in accepted:
                    raise ApiError(415, "unsupported_media_type", "Unsupported media type.",
                                   "Content-Type must be %s." % JSONAPI)
                if op.op_id == "bulk_import_profiles" and len(raw) > IMPORT_MAX_BYTES:
                    raise ApiError(413, "request_too_large", "Request too large.",
                                   "The maximum allowed payload size is 5MB.")
                if op.op_id in ("create_or_update_profile",) and len(raw) > PROFILE_MAX_BYTES:
                    raise ApiError(413, "request_too_large", "Request too large.",
                                   "The maximum allowed payload size is 100KB.")
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    raise invalid("The request body is not valid JSON.", pointer="/")
                precheck_counts(op, body)
                errs = schema_errors(op.body_validator, body)
                if errs:
                    e = ApiError(400, "invalid", "Invalid input.", "")
                    e.errors = errs
                    raise e
            status, out = getattr(self, "h_" + op.handler_name)(op, params, query, body, path)
            if after is not None:
                raise after
            if 200 <= status < 300 and self._drop_after_apply(path, op):
                raise DropConnection(status)
            return status, out, rl_headers
        except ApiError as e:
            e.headers.update(rl_headers)
            raise

    # -- control endpoints -------------------------------------------------------------------
    def _control(self, method, path):
        sim = self.sim
        try:
            raw = self._read_body(MAX_BODY)
            body = json.loads(raw) if raw else {}
        except (ValueError, ApiError):
            return self._send(400, {"error": "bad json"}, ctype="application/json")
        if path == "/_sim/health" and method == "GET":
            return self._send(200, {"status": "ok", "revision": sim.spec.version}, ctype="application/json")
        if path == "/_sim/state" and method == "GET":
            return self._send(200, sim.dump(), ctype="application/json")
        if path == "/_sim/reset" and method == "POST":
            sim.reset(config_too=bool(body.get("config")))
            return self._send(200, {"status": "reset"}, ctype="application/json")
        if path == "/_sim/faults" and method == "POST":
            unknown = set(body) - FAULT_KEYS
            if unknown:
                return self._send(400, {"error": "unknown fault keys", "keys": sorted(unknown)}, ctype="application/json")
            daa = body.get("drop_after_apply")
            if daa is not None and (not isinstance(daa, dict) or set(daa) - DROP_AFTER_APPLY_KEYS):
                return self._send(400, {"error": "drop_after_apply takes an object with keys %s"
                                        % sorted(DROP_AFTER_APPLY_KEYS)}, ctype="application/json")
            with sim.lock:
                sim.faults = copy.deepcopy(body)
            return self._send(200, {"faults": body}, ctype="application/json")
        if path == "/_sim/config" and method == "POST":
            unknown = set(body) - set(DEFAULT_CONFIG)
            if unknown:
                return self._send(400, {"error": "unknown config keys", "keys": sorted(unknown)}, ctype="application/json")
            with sim.lock:
                sim.config.update(body)
                if "seed" in body:
                    sim.rng = random.Random(body["seed"])
                    sim.job_rng = random.Random("jobs-%s" % body["seed"])
                sim.cond.notify_all()
                cfg = copy.deepcopy(sim.config)
            return self._send(200, {"config": cfg}, ctype="application/json")
        return self._send(404, {"error": "unknown control endpoint"}, ctype="application/json")

    # -- API handlers: each returns (status, body) -------------------------------------------
    def _filters(self, op, query):
        return parse_filter(query["filter"], op.filter_fields) if query.get("filter") else []

    def _list_or_404(self, lid):
        lst = self.sim.lists.get(lid)
        if lst is None:
            raise ApiError(404, "not_found", "Not found.", "A list with id %s does not exist." % lid,
                           parameter="id")
        return lst

    def h_get_lists(self, op, params, query, body, path):
        conds = self._filters(op, query)
        with self.sim.lock:
            items = [l for l in self.sim.lists.values()
                     if filter_match(conds, {"name": l["name"], "id": l["id"]})]
            page, links = paginate(self._base(), path, query, op, items)
            return 200, {"data": [list_resource(self._base(), l) for l in page], "links": links}

    def h_create_list(self, op, params, query, body, path):
        a = body["data"]["attributes"]
        with self.sim.lock:
            t = now_iso()
            lst = {"id": self.sim.new_id("list"), "name": a["name"], "created": t, "updated": t,
                   "opt_in_process": a.get("opt_in_process") or "single_opt_in", "members": [], "joined": {}}
            self.sim.lists[lst["id"]] = lst
            return 201, {"data": list_resource(self._base(), lst),
                         "links": {"self": "%s/api/lists/%s/" % (self._base(), lst["id"])}}

    def h_get_list(self, op, params, query, body, path):
        with self.sim.lock:
            lst = self._list_or_404(params["id"])
            return 200, {"data": list_resource(self._base(), lst),
                         "links": {"self": "%s/api/lists/%s/" % (self._base(), lst["id"])}}

    def _members(self, op, params, query):
        conds = self._filters(op, query)
        lst = self._list_or_404(params["id"])
        return [self.sim.profiles[m] for m in lst["members"]
                if m in self.sim.profiles and filter_match(conds, self.sim.profiles[m])]

    def h_get_list_profile_ids(self, op, params, query, body, path):
        with self.sim.lock:
            page, links = paginate(self._base(), path, query, op, self._members(op, params, query))
            return 200, {"data": [{"type": "profile", "id": p["id"]} for p in page], "links": links}

    def h_get_list_profiles(self, op, params, query, body, path):
        subs = "subscriptions" in query.get("additional-fields[profile]", "")
        with self.sim.lock:
            page, links = paginate(self._base(), path, query, op, self._members(op, params, query))
            lst = self.sim.lists[params["id"]]
            return 200, {"data": [profile_resource(self._base(), p, subs, {"joined_group_at": lst["joined"].get(p["id"])})
                                  for p in page], "links": links}

    def _relationship_ids(self, body):
        data = body["data"]
        if len(data) > RELATIONSHIP_MAX_IDS:
            raise invalid("This endpoint accepts a maximum of %d profiles per call." % RELATIONSHIP_MAX_IDS,
                          pointer="/data")
        return [d["id"] for d in data]

    def h_add_list_profiles(self, op, params, query, body, path):
        ids = self._relationship_ids(body)
        with self.sim.lock:
            lst = self._list_or_404(params["id"])
            missing = [i for i, pid in enumerate(ids) if pid not in self.sim.profiles]
            if missing:
                e = invalid("Profile not found.", pointer="/data/%d/id" % missing[0])
                e.errors += [ApiError.entry(400, "invalid", "Invalid input.", "Profile not found.",
                                            pointer="/data/%d/id" % i) for i in missing[1:100]]
                raise e
            self.sim.add_members(lst, ids)
            return 204, None

    def h_remove_list_profiles(self, op, params, query, body, path):
        ids = self._relationship_ids(body)
        with self.sim.lock:
            lst = self._list_or_404(params["id"])
            drop = set(ids)   # unknown ids and non-members are ignored: removal is idempotent
            lst["members"] = [m for m in lst["members"] if m not in drop]
            for m in drop:
                lst["joined"].pop(m, None)
            lst["updated"] = now_iso()
            return 204, None

    def h_get_profiles(self, op, params, query, body, path):
        conds = self._filters(op, query)
        subs = "subscriptions" in query.get("additional-fields[profile]", "")
        with self.sim.lock:
            items = [p for p in self.sim.profiles.values() if filter_match(conds, p)]
            page, links = paginate(self._base(), path, query, op, items)
            return 200, {"data": [profile_resource(self._base(), p, subs) for p in page], "links": links}

    def h_profile_import(self, op, params, query, body, path):
        rec = body["data"]
        errs = self.sim.profile_record_errors(rec, "/data")
        if errs:
            raise invalid(errs[0][1], pointer=errs[0][0])
        with self.sim.lock:
            try:
                p, created = self.sim.upsert_record(rec)
            except KeyError:
                raise ApiError(404, "not_found", "Not found.", "Profile not found.", pointer="/data/id")
            except ValueError as e:
                raise ApiError(409, "duplicate_profile", "Conflict.",
                               "A profile already exists with one of these identifiers.",
                               pointer="/data/attributes/%s" % e)
            return (201 if created else 200), {"data": profile_resource(self._base(), p),
                                               "links": {"self": "%s/api/profiles/%s/" % (self._base(), p["id"])}}

    def _job_list_ids(self, data, pointer, single):
        rel = (data.get("relationships") or {})
        if single:
            d = ((rel.get("list") or {}).get("data"))
            refs = [d] if d else []
        else:
            refs = ((rel.get("lists") or {}).get("data")) or []
        for i, r in enumerate(refs):
            if r["id"] not in self.sim.lists:
                raise ApiError(404, "not_found", "Not found.", "A list with id %s does not exist." % r["id"],
                               pointer=pointer if single else "%s/%d/id" % (pointer, i))
        return [r["id"] for r in refs]

    def _new_job(self, kind, recs, list_ids, extra=None):
        t = time.time()
        job = {"type": kind, "id": self.sim.new_id("job"), "status": "queued", "created_at": now_iso(t),
               "total_count": len(recs), "completed_count": 0, "failed_count": 0, "completed_at": None,
               "expires_at": now_iso(t + 7 * 86400), "started_at": None, "list_ids": list_ids,
               "profile_ids": [], "errors": [], "_created": t, "_records": copy.deepcopy(recs)}
        job.update(extra or {})
        self.sim.enqueue_job(job)
        return job

    def h_create_import_job(self, op, params, query, body, path):
        data = body["data"]
        recs = data["attributes"]["profiles"]["data"]
        if len(recs) > IMPORT_MAX_PROFILES:
            raise invalid("Accepts up to %d profiles per request." % IMPORT_MAX_PROFILES,
                          pointer="/data/attributes/profiles/data")
        if not recs:
            raise invalid("At least one profile is required.", pointer="/data/attributes/profiles/data")
        with self.sim.lock:
            lids = self._job_list_ids(data, "/data/relationships/lists/data", False)
            job = self._new_job("profile-bulk-import-job", recs, lids)
            return 202, {"data": job_resource(self._base(), job),
                         "links": {"self": "%s/api/profile-bulk-import-jobs/%s/" % (self._base(), job["id"])}}

    def h_get_import_jobs(self, op, params, query, body, path):
        conds = self._filters(op, query)
        with self.sim.lock:
            items = [self.sim.jobs[j] for j in self.sim.job_order
                     if self.sim.jobs[j]["type"] == "profile-bulk-import-job" and filter_match(conds, self.sim.jobs[j])]
            page, links = paginate(self._base(), path, query, op, items)
            return 200, {"data": [job_resource(self._base(), j) for j in page], "links": links}

    def _job_or_404(self, jid):
        j = self.sim.jobs.get(jid)
        if j is None or j["type"] != "profile-bulk-import-job":
            raise ApiError(404, "not_found", "Not found.", "Job not found.", parameter="id")
        return j

    def h_get_import_job(self, op, params, query, body, path):
        with self.sim.lock:
            j = self._job_or_404(params["job_id"])
            return 200, {"data": job_resource(self._base(), j),
                         "links": {"self": "%s/api/profile-bulk-import-jobs/%s/" % (self._base(), j["id"])}}

    def h_get_import_errors(self, op, params, query, body, path):
        with self.sim.lock:
            j = self._job_or_404(params["id"])
            page, links = paginate(self._base(), path, query, op, j["errors"])
            return 200, {"data": copy.deepcopy(page), "links": links}

    def _subscription_checks(self, recs, historical, limit, subscribe):
        if len(recs) > limit:
            raise invalid("Maximum number of profiles per call: %d." % limit, pointer="/data/attributes/profiles/data")
        if not recs:
            raise invalid("At least one profile is required.", pointer="/data/attributes/profiles/data")
        now = time.time()
        errs = []
        for i, rec in enumerate(recs):
            base = "/data/attributes/profiles/data/%d/attributes" % i
            a = rec["attributes"]
            subs = a.get("subscriptions") or {}
            email, phone = a.get("email"), a.get("phone_number")
            if email is not None and not EMAIL_RE.match(email):
                errs.append((base + "/email", "Invalid email address."))
            if phone is not None and not E164_RE.match(phone):
                errs.append((base + "/phone_number", "Invalid phone number format (E.164 required)."))
            if subs.get("email") and not email and not (subscribe and rec.get("id")):
                errs.append((base + "/email", "An email address is required for the email channel."))
            if subs.get("sms") and not phone and not (subscribe and rec.get("id")):
                errs.append((base + "/phone_number", "A phone number is required for the SMS channel."))
            if subscribe:
                for ch in ("email", "sms"):
                    mk = (subs.get(ch) or {}).get("marketing") or {}
                    ca = mk.get("consented_at")
                    ptr = "%s/subscriptions/%s/marketing/consented_at" % (base, ch)
                    if historical and (subs.get(ch) or {}).get("marketing") and not ca:
                        errs.append((ptr, "consented_at is required when historical_import is true."))
                    if ca and not historical:
                        errs.append((ptr, "consented_at may only be set when historical_import is true."))
                    if ca:
                        try:
                            ts = datetime.fromisoformat(ca.replace("Z", "+00:00"))
                            if ts.tzinfo is None:
                                ts = ts.replace(tzinfo=timezone.utc)
                            if ts.timestamp() > now:
                                errs.append((ptr, "consented_at must be in the past."))
                        except ValueError:
                            errs.append((ptr, "consented_at must be an ISO 8601 datetime."))
        if errs:
            e = invalid(errs[0][1], pointer=errs[0][0])
            e.errors += [ApiError.entry(400, "invalid", "Invalid input.", d, pointer=p) for p, d in errs[1:100]]
            raise e

    def h_subscribe(self, op, params, query, body, path):
        data = body["data"]
        a = data["attributes"]
        recs = a["profiles"]["data"]
        self._subscription_checks(recs, bool(a.get("historical_import")), SUBSCRIBE_MAX, True)
        with self.sim.lock:
            lids = self._job_list_ids(data, "/data/relationships/list/data/id", True)
            self._new_job("profile-subscription-bulk-create-job", recs, lids,
                          {"historical_import": bool(a.get("historical_import")),
                           "custom_source": a.get("custom_source")})
        return 202, None

    def h_unsubscribe(self, op, params, query, body, path):
        data = body["data"]
        recs = data["attributes"]["profiles"]["data"]
        self._subscription_checks(recs, False, UNSUBSCRIBE_MAX, False)
        with self.sim.lock:
            lids = self._job_list_ids(data, "/data/relationships/list/data/id", True)
            self._new_job("profile-subscription-bulk-delete-job", recs, lids)
        return 202, None


# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_server(host="127.0.0.1", port=0, spec_path=None, config=None):
    """Load the spec, build the state and bind. Returns (server, sim); call serve_forever()."""
    spec = Spec(spec_path or default_spec_path())
    sim = Sim(spec, config)
    handler = type("BoundHandler", (Handler,), {"sim": sim})
    return Server((host, port), handler), sim


def main(argv=None):
    ap = argparse.ArgumentParser(description="Klaviyo API simulator (tests/local stack)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--port-file", help="write the bound port here (atomically)")
    ap.add_argument("--spec", default=None, help="OpenAPI spec (default: the vendored schemas/vendor/klaviyo/...)")
    ap.add_argument("--job-delay", type=float, default=None, help="seconds a job stays queued and processing each")
    ap.add_argument("--job-jitter", type=float, default=None,
                    help="up to this many extra seconds of processing per job (jobs end out of order)")
    ap.add_argument("--time-scale", type=float, default=None, help="scale of rate-limit windows")
    ap.add_argument("--no-rate-limits", action="store_true")
    ap.add_argument("--check-responses", action="store_true")
    args = ap.parse_args(argv)
    cfg = {}
    if args.job_delay is not None:
        cfg["job_queued_s"] = cfg["job_processing_s"] = args.job_delay
    if args.job_jitter is not None:
        cfg["job_jitter_s"] = args.job_jitter
    if args.time_scale is not None:
        cfg["time_scale"] = args.time_scale
    if args.no_rate_limits:
        cfg["rate_limits"] = False
    if args.check_responses:
        cfg["check_responses"] = True
    t0 = time.monotonic()
    server, sim = make_server(args.host, args.port, args.spec, cfg)
    port = server.server_address[1]
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("klaviyo_sim listening on %s:%d (revision %s, startup %.2fs)"
          % (args.host, port, sim.spec.version, time.monotonic() - t0), flush=True)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.2)
    with sim.lock:
        sim.stopping = True
        sim.cond.notify_all()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
