"""The served Klaviyo API operations, one function each, named as in spec.SERVED: each takes the
Sim and the Request and returns (status, JSON body or None), or raises ApiError. They run after
the request handler's checks (authentication, rate limit, revision, faults, the body against the
spec), so the body they get is valid JSON:API."""

import copy

from .errors import ApiError, invalid, invalid_all, not_found
from .filters import conditions, filter_match
from .jobs import new_job
from .resources import document, job_resource, list_resource, now_iso, paginate, profile_resource
from .validate import profile_record_errors, require_profiles, subscription_checks


class Request:
    """What an operation needs of its request: base URL, operation, path parameters, query,
    parsed body and path."""

    def __init__(self, base, op, params, query, body, path):
        self.base, self.op, self.params, self.query, self.body, self.path = base, op, params, query, body, path

    def with_subscriptions(self):
        """additional-fields[profile]=subscriptions: profiles carry their subscriptions."""
        return "subscriptions" in self.query.get("additional-fields[profile]", "")


def _page(rq, items, render):
    """200 with the requested page of items, each rendered, and the paging links."""
    page, links = paginate(rq.base, rq.path, rq.query, rq.op, items)
    return 200, {"data": [render(x) for x in page], "links": links}


def _list_or_404(sim, lid):
    lst = sim.lists.get(lid)
    if lst is None:
        raise not_found("A list with id %s does not exist." % lid, parameter="id")
    return lst


def get_lists(sim, rq):
    conds = conditions(rq.op, rq.query)
    with sim.lock:
        items = [l for l in sim.lists.values()
                 if filter_match(conds, {"name": l["name"], "id": l["id"]})]
        return _page(rq, items, lambda l: list_resource(rq.base, l))


def create_list(sim, rq):
    a = rq.body["data"]["attributes"]
    with sim.lock:
        t = now_iso()
        lst = {"id": sim.new_id("list"), "name": a["name"], "created": t, "updated": t,
               "opt_in_process": a.get("opt_in_process") or "single_opt_in", "members": [], "joined": {}}
        sim.lists[lst["id"]] = lst
        return 201, document(list_resource(rq.base, lst))


def get_list(sim, rq):
    with sim.lock:
        return 200, document(list_resource(rq.base, _list_or_404(sim, rq.params["id"])))


def _members(sim, rq):
    conds = conditions(rq.op, rq.query)
    lst = _list_or_404(sim, rq.params["id"])
    return [sim.profiles[m] for m in lst["members"]
            if m in sim.profiles and filter_match(conds, sim.profiles[m])]


def get_list_profile_ids(sim, rq):
    with sim.lock:
        return _page(rq, _members(sim, rq), lambda p: {"type": "profile", "id": p["id"]})


def get_list_profiles(sim, rq):
    subs = rq.with_subscriptions()
    with sim.lock:
        members = _members(sim, rq)
        joined = sim.lists[rq.params["id"]]["joined"]
        return _page(rq, members,
                     lambda p: profile_resource(rq.base, p, subs, {"joined_group_at": joined.get(p["id"])}))


def _relationship_ids(body):
    """The profile ids of a relationships request (their count was checked by precheck_counts)."""
    return [d["id"] for d in body["data"]]


def add_list_profiles(sim, rq):
    ids = _relationship_ids(rq.body)
    with sim.lock:
        lst = _list_or_404(sim, rq.params["id"])
        missing = [i for i, pid in enumerate(ids) if pid not in sim.profiles]
        if missing:
            raise invalid_all([("/data/%d/id" % i, "Profile not found.") for i in missing])
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
    subs = rq.with_subscriptions()
    with sim.lock:
        if len(conds) == 1 and conds[0][1] == "email" and conds[0][0] in ("any", "equals"):
            # by the identifier index, not a scan of every profile (lookups of removals are
            # the hot path of the flush benchmarks); the same order as the scan
            vals = conds[0][2] if conds[0][0] == "any" else [conds[0][2]]
            ids = {sim.index["email"].get(v) for v in vals} - {None}
            items = sorted((sim.profiles[i] for i in ids if i in sim.profiles), key=lambda p: sim.profile_seq[p["id"]])
        else:
            items = [p for p in sim.profiles.values() if filter_match(conds, p)]
        return _page(rq, items, lambda p: profile_resource(rq.base, p, subs))


def profile_import(sim, rq):
    rec = rq.body["data"]
    errs = profile_record_errors(rec, "/data")
    if errs:
        raise invalid(errs[0][1], pointer=errs[0][0])
    with sim.lock:
        try:
            p, created = sim.upsert_record(rec)
        except KeyError:
            raise not_found("Profile not found.", pointer="/data/id")
        except ValueError as e:
            raise ApiError(409, "duplicate_profile", "Conflict.",
                           "A profile already exists with one of these identifiers.",
                           pointer="/data/attributes/%s" % e)
        return (201 if created else 200), document(profile_resource(rq.base, p))


def _job_list_ids(sim, data, pointer, single):
    rel = (data.get("relationships") or {})
    if single:
        d = ((rel.get("list") or {}).get("data"))
        refs = [d] if d else []
    else:
        refs = ((rel.get("lists") or {}).get("data")) or []
    for i, r in enumerate(refs):
        if r["id"] not in sim.lists:
            raise not_found("A list with id %s does not exist." % r["id"],
                            pointer=pointer if single else "%s/%d/id" % (pointer, i))
    return [r["id"] for r in refs]


def create_import_job(sim, rq):
    data = rq.body["data"]
    recs = data["attributes"]["profiles"]["data"]
    require_profiles(recs)
    with sim.lock:
        lids = _job_list_ids(sim, data, "/data/relationships/lists/data", False)
        job = new_job(sim, "profile-bulk-import-job", recs, lids)
        return 202, document(job_resource(rq.base, job))


def get_import_jobs(sim, rq):
    conds = conditions(rq.op, rq.query)
    order = rq.query.get("sort", "created_at")
    if order not in ("created_at", "-created_at"):  # the spec's enum
        raise invalid("'%s' is not a valid sort field for this endpoint." % order, parameter="sort")
    with sim.lock:
        items = [sim.jobs[j] for j in sim.job_order
                 if sim.jobs[j]["type"] == "profile-bulk-import-job" and filter_match(conds, sim.jobs[j])]
        if order == "-created_at":  # job_order is creation order
            items.reverse()
        return _page(rq, items, lambda j: job_resource(rq.base, j))


def _job_or_404(sim, jid):
    j = sim.jobs.get(jid)
    if j is None or j["type"] != "profile-bulk-import-job":
        raise not_found("Job not found.", parameter="id")
    return j


def get_import_job(sim, rq):
    with sim.lock:
        return 200, document(job_resource(rq.base, _job_or_404(sim, rq.params["job_id"])))


def get_import_errors(sim, rq):
    with sim.lock:
        return _page(rq, _job_or_404(sim, rq.params["id"])["errors"], copy.deepcopy)


def subscribe(sim, rq):
    data = rq.body["data"]
    a = data["attributes"]
    recs = a["profiles"]["data"]
    subscription_checks(recs, bool(a.get("historical_import")), subscribe=True)
    with sim.lock:
        lids = _job_list_ids(sim, data, "/data/relationships/list/data/id", True)
        new_job(sim, "profile-subscription-bulk-create-job", recs, lids,
                {"historical_import": bool(a.get("historical_import")),
                 "custom_source": a.get("custom_source")})
    return 202, None


def unsubscribe(sim, rq):
    data = rq.body["data"]
    recs = data["attributes"]["profiles"]["data"]
    subscription_checks(recs, False, subscribe=False)
    with sim.lock:
        lids = _job_list_ids(sim, data, "/data/relationships/list/data/id", True)
        new_job(sim, "profile-subscription-bulk-delete-job", recs, lids)
    return 202, None


HANDLERS = {f.__name__: f for f in (
    get_lists, create_list, get_list, get_list_profile_ids, add_list_profiles, remove_list_profiles,
    get_list_profiles, get_profiles, profile_import, get_import_jobs, create_import_job,
    get_import_job, get_import_errors, subscribe, unsubscribe)}
