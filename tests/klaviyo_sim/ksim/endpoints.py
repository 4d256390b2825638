"""The served Klaviyo API operations, one function each, named as in spec.SERVED: each takes the
Sim and the Request and returns (status, JSON body or None), or raises ApiError. They run after
the request handler's checks (authentication, rate limit, revision, faults, the body against the
spec), so the body they get is valid JSON:API."""

import copy

from .errors import ApiError, invalid
from .filters import conditions, filter_match
from .jobs import new_job
from .resources import job_resource, list_resource, now_iso, paginate, profile_resource
from .validate import (IMPORT_MAX_PROFILES, RELATIONSHIP_MAX_IDS, SUBSCRIBE_MAX, UNSUBSCRIBE_MAX,
                       profile_record_errors, subscription_checks)


class Request:
    """What an operation needs of its request: base URL, operation, path parameters, query,
    parsed body and path."""

    def __init__(self, base, op, params, query, body, path):
        self.base, self.op, self.params, self.query, self.body, self.path = base, op, params, query, body, path


def _list_or_404(sim, lid):
    lst = sim.lists.get(lid)
    if lst is None:
        raise ApiError(404, "not_found", "Not found.", "A list with id %s does not exist." % lid,
                       parameter="id")
    return lst


def get_lists(sim, rq):
    conds = conditions(rq.op, rq.query)
    with sim.lock:
        items = [l for l in sim.lists.values()
                 if filter_match(conds, {"name": l["name"], "id": l["id"]})]
        page, links = paginate(rq.base, rq.path, rq.query, rq.op, items)
        return 200, {"data": [list_resource(rq.base, l) for l in page], "links": links}


def create_list(sim, rq):
    a = rq.body["data"]["attributes"]
    with sim.lock:
        t = now_iso()
        lst = {"id": sim.new_id("list"), "name": a["name"], "created": t, "updated": t,
               "opt_in_process": a.get("opt_in_process") or "single_opt_in", "members": [], "joined": {}}
        sim.lists[lst["id"]] = lst
        return 201, {"data": list_resource(rq.base, lst),
                     "links": {"self": "%s/api/lists/%s/" % (rq.base, lst["id"])}}


def get_list(sim, rq):
    with sim.lock:
        lst = _list_or_404(sim, rq.params["id"])
        return 200, {"data": list_resource(rq.base, lst),
                     "links": {"self": "%s/api/lists/%s/" % (rq.base, lst["id"])}}


def _members(sim, rq):
    conds = conditions(rq.op, rq.query)
    lst = _list_or_404(sim, rq.params["id"])
    return [sim.profiles[m] for m in lst["members"]
            if m in sim.profiles and filter_match(conds, sim.profiles[m])]


def get_list_profile_ids(sim, rq):
    with sim.lock:
        page, links = paginate(rq.base, rq.path, rq.query, rq.op, _members(sim, rq))
        return 200, {"data": [{"type": "profile", "id": p["id"]} for p in page], "links": links}


def get_list_profiles(sim, rq):
    subs = "subscriptions" in rq.query.get("additional-fields[profile]", "")
    with sim.lock:
        page, links = paginate(rq.base, rq.path, rq.query, rq.op, _members(sim, rq))
        lst = sim.lists[rq.params["id"]]
        return 200, {"data": [profile_resource(rq.base, p, subs, {"joined_group_at": lst["joined"].get(p["id"])})
                              for p in page], "links": links}


def _relationship_ids(body):
    data = body["data"]
    if len(data) > RELATIONSHIP_MAX_IDS:
        raise invalid("This endpoint accepts a maximum of %d profiles per call." % RELATIONSHIP_MAX_IDS,
                      pointer="/data")
    return [d["id"] for d in data]


def add_list_profiles(sim, rq):
    ids = _relationship_ids(rq.body)
    with sim.lock:
        lst = _list_or_404(sim, rq.params["id"])
        missing = [i for i, pid in enumerate(ids) if pid not in sim.profiles]
        if missing:
            e = invalid("Profile not found.", pointer="/data/%d/id" % missing[0])
            e.errors += [ApiError.entry(400, "invalid", "Invalid input.", "Profile not found.",
                                        pointer="/data/%d/id" % i) for i in missing[1:100]]
            raise e
        sim.add_members(lst, ids)
        return 204, None


def remove_list_profiles(sim, rq):
    ids = _relationship_ids(rq.body)
    with sim.lock:
        lst = _list_or_404(sim, rq.params["id"])
        drop = set(ids)   # unknown ids and non-members are ignored: removal is idempotent
        lst["members"] = [m for m in lst["members"] if m not in drop]
        for m in drop:
            lst["joined"].pop(m, None)
        lst["updated"] = now_iso()
        return 204, None


def get_profiles(sim, rq):
    conds = conditions(rq.op, rq.query)
    subs = "subscriptions" in rq.query.get("additional-fields[profile]", "")
    with sim.lock:
        items = [p for p in sim.profiles.values() if filter_match(conds, p)]
        page, links = paginate(rq.base, rq.path, rq.query, rq.op, items)
        return 200, {"data": [profile_resource(rq.base, p, subs) for p in page], "links": links}


def profile_import(sim, rq):
    rec = rq.body["data"]
    errs = profile_record_errors(rec, "/data")
    if errs:
        raise invalid(errs[0][1], pointer=errs[0][0])
    with sim.lock:
        try:
            p, created = sim.upsert_record(rec)
        except KeyError:
            raise ApiError(404, "not_found", "Not found.", "Profile not found.", pointer="/data/id")
        except ValueError as e:
            raise ApiError(409, "duplicate_profile", "Conflict.",
                           "A profile already exists with one of these identifiers.",
                           pointer="/data/attributes/%s" % e)
        return (201 if created else 200), {"data": profile_resource(rq.base, p),
                                           "links": {"self": "%s/api/profiles/%s/" % (rq.base, p["id"])}}


def _job_list_ids(sim, data, pointer, single):
    rel = (data.get("relationships") or {})
    if single:
        d = ((rel.get("list") or {}).get("data"))
        refs = [d] if d else []
    else:
        refs = ((rel.get("lists") or {}).get("data")) or []
    for i, r in enumerate(refs):
        if r["id"] not in sim.lists:
            raise ApiError(404, "not_found", "Not found.", "A list with id %s does not exist." % r["id"],
                           pointer=pointer if single else "%s/%d/id" % (pointer, i))
    return [r["id"] for r in refs]


def create_import_job(sim, rq):
    data = rq.body["data"]
    recs = data["attributes"]["profiles"]["data"]
    if len(recs) > IMPORT_MAX_PROFILES:
        raise invalid("Accepts up to %d profiles per request." % IMPORT_MAX_PROFILES,
                      pointer="/data/attributes/profiles/data")
    if not recs:
        raise invalid("At least one profile is required.", pointer="/data/attributes/profiles/data")
    with sim.lock:
        lids = _job_list_ids(sim, data, "/data/relationships/lists/data", False)
        job = new_job(sim, "profile-bulk-import-job", recs, lids)
        return 202, {"data": job_resource(rq.base, job),
                     "links": {"self": "%s/api/profile-bulk-import-jobs/%s/" % (rq.base, job["id"])}}


def get_import_jobs(sim, rq):
    conds = conditions(rq.op, rq.query)
    with sim.lock:
        items = [sim.jobs[j] for j in sim.job_order
                 if sim.jobs[j]["type"] == "profile-bulk-import-job" and filter_match(conds, sim.jobs[j])]
        page, links = paginate(rq.base, rq.path, rq.query, rq.op, items)
        return 200, {"data": [job_resource(rq.base, j) for j in page], "links": links}


def _job_or_404(sim, jid):
    j = sim.jobs.get(jid)
    if j is None or j["type"] != "profile-bulk-import-job":
        raise ApiError(404, "not_found", "Not found.", "Job not found.", parameter="id")
    return j


def get_import_job(sim, rq):
    with sim.lock:
        j = _job_or_404(sim, rq.params["job_id"])
        return 200, {"data": job_resource(rq.base, j),
                     "links": {"self": "%s/api/profile-bulk-import-jobs/%s/" % (rq.base, j["id"])}}


def get_import_errors(sim, rq):
    with sim.lock:
        j = _job_or_404(sim, rq.params["id"])
        page, links = paginate(rq.base, rq.path, rq.query, rq.op, j["errors"])
        return 200, {"data": copy.deepcopy(page), "links": links}


def subscribe(sim, rq):
    data = rq.body["data"]
    a = data["attributes"]
    recs = a["profiles"]["data"]
    subscription_checks(recs, bool(a.get("historical_import")), SUBSCRIBE_MAX, True)
    with sim.lock:
        lids = _job_list_ids(sim, data, "/data/relationships/list/data/id", True)
        new_job(sim, "profile-subscription-bulk-create-job", recs, lids,
                {"historical_import": bool(a.get("historical_import")),
                 "custom_source": a.get("custom_source")})
    return 202, None


def unsubscribe(sim, rq):
    data = rq.body["data"]
    recs = data["attributes"]["profiles"]["data"]
    subscription_checks(recs, False, UNSUBSCRIBE_MAX, False)
    with sim.lock:
        lids = _job_list_ids(sim, data, "/data/relationships/list/data/id", True)
        new_job(sim, "profile-subscription-bulk-delete-job", recs, lids)
    return 202, None


HANDLERS = {f.__name__: f for f in (
    get_lists, create_list, get_list, get_list_profile_ids, add_list_profiles, remove_list_profiles,
    get_list_profiles, get_profiles, profile_import, get_import_jobs, create_import_job,
    get_import_job, get_import_errors, subscribe, unsubscribe)}
