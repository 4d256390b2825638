"""How the simulator renders what it holds: lists, profiles and bulk import jobs as JSON:API
resources with Klaviyo's links, timestamps as Klaviyo writes them, and cursor paging with
links.self/next/prev."""

import base64
import json
import time
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

from .errors import invalid


def now_iso(t=None):
    """ISO 8601 UTC timestamp as Klaviyo renders it."""
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc).isoformat(timespec="seconds")


def _url(base, *parts):
    """A link as Klaviyo writes it: base/api/<parts>/, with the trailing slash."""
    return "%s/api/%s/" % (base, "/".join(parts))


def _relationship_links(base, collection, rid, name):
    return {"self": _url(base, collection, rid, "relationships", name), "related": _url(base, collection, rid, name)}


def document(res):
    """The answer that holds one resource: the resource, and its own link as the document's."""
    return {"data": res, "links": {"self": res["links"]["self"]}}


def list_resource(base, l):
    return {"type": "list", "id": l["id"],
            "attributes": {"name": l["name"], "created": l["created"], "updated": l["updated"],
                           "opt_in_process": l["opt_in_process"]},
            "relationships": {"profiles": {"links": _relationship_links(base, "lists", l["id"], "profiles")}},
            "links": {"self": _url(base, "lists", l["id"])}}


def subscriptions_view(p):
    out = {}
    for ch in ("email", "sms"):
        mk = p["subscriptions"].get(ch, {}).get("marketing")
        consent = mk["consent"] if mk else "NEVER_SUBSCRIBED"
        out[ch] = {"marketing": {"can_receive_%s_marketing" % ch: consent == "SUBSCRIBED",
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
            "links": {"self": _url(base, "profiles", p["id"])}}


def job_resource(base, j):
    return {"type": "profile-bulk-import-job", "id": j["id"],
            "attributes": {k: j[k] for k in ("status", "created_at", "total_count", "completed_count",
                                             "failed_count", "completed_at", "expires_at", "started_at")},
            "relationships": {"lists": {"data": [{"type": "list", "id": i} for i in j["list_ids"]],
                                        "links": _relationship_links(base, "profile-bulk-import-jobs", j["id"], "lists")}},
            "links": {"self": _url(base, "profile-bulk-import-jobs", j["id"])}}


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
