"""Bulk jobs (profile imports, subscription create and delete jobs): created by the endpoints,
then `queued`, `processing` and applied atomically by one thread, late and out of order when
job_jitter_s asks for it."""

import copy
import sys
import time
import uuid

from .resources import now_iso
from .validate import profile_record_errors


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


def new_job(sim, kind, recs, list_ids, extra=None):
    """A new job of kind over a copy of recs, scheduled; the caller holds Sim.lock."""
    t = time.time()
    job = {"type": kind, "id": sim.new_id("job"), "status": "queued", "created_at": now_iso(t),
           "total_count": len(recs), "completed_count": 0, "failed_count": 0, "completed_at": None,
           "expires_at": now_iso(t + 7 * 86400), "started_at": None, "list_ids": list_ids,
           "profile_ids": [], "errors": [], "_created": t, "_records": copy.deepcopy(recs)}
    job.update(extra or {})
    enqueue(sim, job)
    return job


def enqueue(sim, job):
    """Schedules a job: `queued` for job_queued_s, then `processing` for job_processing_s
    plus a random extra of up to job_jitter_s, then applied. Jobs run concurrently, so with
    jitter a later job can finish first, as on Klaviyo."""
    cfg = sim.config
    jitter = float(cfg.get("job_jitter_s", 0) or 0)
    job["_start_at"] = job["_created"] + float(cfg.get("job_queued_s", 0))
    job["_done_at"] = job["_start_at"] + float(cfg.get("job_processing_s", 0)) + \
        (sim.job_rng.uniform(0, jitter) if jitter > 0 else 0.0)
    slow = sim.faults.get("slow_jobs")
    if slow and slow.get("count", 0) > 0:  # fault: the next N jobs run extra_s longer
        slow["count"] -= 1
        job["_done_at"] += float(slow.get("extra_s", 0))
        sim.faults_injected["slow_jobs"] = sim.faults_injected.get("slow_jobs", 0) + 1
    sim.jobs[job["id"]] = job
    sim.job_order.append(job["id"])
    sim.job_queue.append(job["id"])
    sim.cond.notify_all()


def run(sim):
    """The job thread: moves jobs through queued and processing, applies those that are due."""
    with sim.lock:
        while not sim.stopping:
            now = time.time()
            wake = now + 0.5
            due = []
            for jid in sim.job_queue:
                job = sim.jobs[jid]
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
                sim.job_queue.remove(job["id"])
                try:
                    _apply(sim, job)
                except Exception as e:  # never let the job thread die
                    job["status"] = "cancelled"
                    sys.stderr.write("klaviyo_sim: job failed: %r\n" % (e,))
                sim.jobs_applied += 1
                job["applied_seq"] = sim.jobs_applied
                job["completed_at"] = now_iso()
            if not due:
                sim.cond.wait(max(0.0, wake - now))


def _apply(sim, job):
    recs = job.pop("_records")
    APPLY[job["type"]](sim, job, recs)
    job["status"] = "complete"


def _apply_import(sim, job, recs):
    if sim.config.get("bulk_import_nulls", "ignore") != "clear":
        recs = [without_nulls(r) for r in recs]
    ok_ids = []
    for i, rec in enumerate(recs):
        base = "/data/attributes/profiles/data/%d" % i
        errs = profile_record_errors(rec, base)
        if not errs:
            try:
                p, _ = sim.upsert_record(rec)
                ok_ids.append(p["id"])
                job["profile_ids"].append(p["id"])
            except KeyError:
                errs = [(base + "/id", "Profile not found.")]
            except ValueError as e:
                errs = [(base + "/attributes/" + str(e),
                         "Another profile already has this %s." % e)]
        if errs:
            ptr, detail = errs[0]
            attrs = {"code": "invalid", "title": "Invalid input.", "detail": detail,
                     "source": {"pointer": ptr}, "original_payload": rec}
            if sim.faults.get("anonymous_import_errors"):
                # an error naming no record of the job: neither a pointer nor the payload
                attrs["source"] = {}
                attrs["original_payload"] = None
                _count_anonymous(sim)
            job["errors"].append({"type": "import-error", "id": str(uuid.uuid4()),
                                  "attributes": attrs})
            job["failed_count"] += 1
        else:
            job["completed_count"] += 1
    for lid in job["list_ids"]:
        if lid in sim.lists:
            sim.add_members(sim.lists[lid], ok_ids)


def _count_anonymous(sim):
    fi = sim.faults_injected
    fi["anonymous_import_errors"] = fi.get("anonymous_import_errors", 0) + 1


def _job_list(sim, job):
    """The list of a subscription job (it names one at most), else None."""
    return sim.lists.get(job["list_ids"][0]) if job["list_ids"] else None


def _contact(attrs):
    """The email address and phone number a subscription record gives."""
    return {k: attrs[k] for k in ("email", "phone_number") if attrs.get(k)}


def _marketing_channels(attrs):
    """(channel, marketing parameters) for each email or SMS channel a subscription record names."""
    for ch, params in (attrs.get("subscriptions") or {}).items():
        mk = (params or {}).get("marketing")
        if ch in ("email", "sms") and mk:
            yield ch, mk


def _set_marketing(p, ch, consent, consented_at, custom_source, historical_import, lst):
    p["subscriptions"].setdefault(ch, {})["marketing"] = {
        "consent": consent, "consented_at": consented_at, "method": "API", "custom_source": custom_source,
        "historical_import": historical_import, "list_id": lst["id"] if lst else None}


def _apply_subscribe(sim, job, recs):
    lst = _job_list(sim, job)
    for rec in recs:
        attrs = rec["attributes"]
        p = sim.find_profile(attrs, rec.get("id")) or sim.new_profile()
        ident = _contact(attrs)
        if not sim.identifier_conflict(p, ident):
            sim.apply_profile_attrs(p, ident, None)
        for ch, mk in _marketing_channels(attrs):
            _set_marketing(p, ch, "SUBSCRIBED", mk.get("consented_at") or now_iso(),
                           job.get("custom_source"), bool(job.get("historical_import")), lst)
        if lst:
            sim.add_members(lst, [p["id"]])
        job["completed_count"] += 1


def _apply_unsubscribe(sim, job, recs):
    lst = _job_list(sim, job)
    for rec in recs:
        attrs = rec["attributes"]
        p = sim.find_profile(attrs)
        if p is None:   # Klaviyo creates the profile, then unsubscribes it
            p = sim.new_profile()
            sim.apply_profile_attrs(p, _contact(attrs), None)
        for ch, _ in _marketing_channels(attrs):
            _set_marketing(p, ch, "UNSUBSCRIBED", now_iso(), None, False, lst)
        if lst and p["id"] in lst["members"]:
            lst["members"].remove(p["id"])
            lst["joined"].pop(p["id"], None)
        job["completed_count"] += 1


APPLY = {"profile-bulk-import-job": _apply_import,
         "profile-subscription-bulk-create-job": _apply_subscribe,
         "profile-subscription-bulk-delete-job": _apply_unsubscribe}
