"""Request checks: the revision header, payload and count limits, the request body against the
operation's schema (errors as Klaviyo words them, values never echoed), and the checks of meaning
the schema cannot express (identifier formats, per-record limits, subscription consent)."""

import json
import re
import time
from datetime import datetime, timezone

from .errors import ApiError, invalid, invalid_all, too_large
from .spec import JSONAPI

IMPORT_MAX_BYTES = 5 * 1024 * 1024   # bulk_import_profiles description: 5MB payload
IMPORT_MAX_PROFILES = 10000          # bulk_import_profiles description: up to 10,000 profiles
PROFILE_MAX_BYTES = 100 * 1024       # "maximum allowed payload size per-profile is 100KB"
RELATIONSHIP_MAX_IDS = 1000          # add/remove_profiles_*_list: maximum of 1000 profiles per call
SUBSCRIBE_MAX = 1000                 # bulk_subscribe_profiles: maximum number of profiles 1000
UNSUBSCRIBE_MAX = 100                # bulk_unsubscribe_profiles: maximum per call 100
EMAIL_RE = re.compile(r"^[^@\s\"<>(),;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
REVISION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[A-Za-z0-9_-]+)?$")


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
    """COUNT_LIMITS, before the schema pass (a 10,001-profile import is not schema-checked)."""
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
    """Spec validation of a request body -> list of (pointer, detail), at most 100 (values never
    echoed, so no personal data leaks into worker logs)."""
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
        out.append((ptr or "/", detail))
    return out


def check_revision(rev, known):
    """The `revision` header: required, and one of the known revisions."""
    if not rev:
        raise invalid("Missing 'revision' header.", parameter="revision")
    if not REVISION_RE.match(rev) or rev not in known:
        raise invalid("Invalid or unsupported revision.", parameter="revision")


def request_body(op, raw, ctype, strict_content_type):
    """The parsed request body of an operation that takes one (else None), after the checks in
    order: presence, Content-Type, payload size, JSON, counts, the schema."""
    body = None
    if op.body_validator is not None:
        ctype = (ctype or "").split(";")[0].strip().lower()
        accepted = {JSONAPI} if strict_content_type else {JSONAPI, "application/json"}
        if not raw and op.body_required:
            raise invalid("A request body is required.", pointer="/data")
        if ctype not in accepted:
            raise ApiError(415, "unsupported_media_type", "Unsupported media type.",
                           "Content-Type must be %s." % JSONAPI)
        if op.op_id == "bulk_import_profiles" and len(raw) > IMPORT_MAX_BYTES:
            raise too_large("The maximum allowed payload size is 5MB.")
        if op.op_id == "create_or_update_profile" and len(raw) > PROFILE_MAX_BYTES:
            raise too_large("The maximum allowed payload size is 100KB.")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise invalid("The request body is not valid JSON.", pointer="/")
        precheck_counts(op, body)
        errs = schema_errors(op.body_validator, body)
        if errs:
            raise invalid_all(errs)
    return body


def identifier_format_errors(attrs, base):
    """An email address that is not one, a phone number that is not E.164 -> [(pointer, detail)];
    base points at the attributes object."""
    errs = []
    email = attrs.get("email")
    if email is not None and not EMAIL_RE.match(email):
        errs.append((base + "/email", "Invalid email address."))
    phone = attrs.get("phone_number")
    if phone is not None and not E164_RE.match(phone):
        errs.append((base + "/phone_number", "Invalid phone number format (E.164 required)."))
    return errs


def require_profiles(recs):
    """A bulk job needs at least one profile (the schema allows an empty list)."""
    if not recs:
        raise invalid("At least one profile is required.", pointer="/data/attributes/profiles/data")


def profile_record_errors(rec, base):
    """Per-record data checks of a bulk import (reported as import-errors, not 400)."""
    attrs = rec.get("attributes") or {}
    errs = []
    if len(json.dumps(rec)) > PROFILE_MAX_BYTES:
        errs.append((base, "Profile payload exceeds 100KB."))
    errs += identifier_format_errors(attrs, base + "/attributes")
    if not rec.get("id") and not any(attrs.get(f) for f in ("email", "phone_number", "external_id")):
        errs.append((base + "/attributes", "A profile requires at least one identifier: email, phone_number or external_id."))
    return errs


def subscription_checks(recs, historical, subscribe):
    """The checks of meaning of a subscribe (subscribe=True) or unsubscribe job, all records at
    once: identifier formats, the identifier each channel needs and, for subscribe, consented_at
    against historical_import. Their count was checked by precheck_counts."""
    require_profiles(recs)
    now = time.time()
    errs = []
    for i, rec in enumerate(recs):
        base = "/data/attributes/profiles/data/%d/attributes" % i
        a = rec["attributes"]
        subs = a.get("subscriptions") or {}
        email, phone = a.get("email"), a.get("phone_number")
        errs += identifier_format_errors(a, base)
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
        raise invalid_all(errs)
