"""The simulated Klaviyo account: its configuration (DEFAULT_CONFIG, changed through
/_sim/config), profiles with Klaviyo's identity and upsert rules, lists and their members, jobs,
the request counters and the state dump. All of it is guarded by one lock, Sim.lock; the bulk
job thread (jobs.py) waits on Sim.cond."""

import copy
import random
import string
import threading
import time

from . import jobs
from .resources import now_iso

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
    "record_bodies": False,       # True: recent_requests also keep each request's query and
                                  # body (tests comparing bodies; personal data)
    "latency_ms": [0, 0],         # [lo, hi]: every API answer waits uniform(lo, hi) ms after
                                  # the request was handled (Klaviyo answers in 100-300 ms)
    "seed": 1,                    # RNG seed for faults and ids
}


IDENTIFIERS = ("email", "phone_number", "external_id")   # in the order a record is matched by


def _ident_key(field, value):
    """The index key of an identifier: emails match case-insensitively."""
    return value.lower() if field == "email" else value


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
        self.job_thread = threading.Thread(target=jobs.run, args=(self,), name="klaviyo-sim-jobs",
                                           daemon=True)
        self.job_thread.start()

    # -- state -------------------------------------------------------------------------------
    def _seed(self, seed):
        self.rng = random.Random(seed)
        self.job_rng = random.Random("jobs-%s" % seed)
        self.latency_rng = random.Random("latency-%s" % seed)

    def _reset_locked(self):
        self._seed(self.config.get("seed", 1))
        self.jobs_applied = 0    # jobs applied so far (their applied_seq)
        self.profiles = {}       # id -> profile dict
        self.profile_seq = {}     # profile id -> creation order (the scan order of self.profiles)
        self.max_in_flight = {}  # op id (and "*": all) -> most requests handled at once
        if not hasattr(self, "in_flight"):
            self.in_flight = {}  # op id -> requests being handled now (kept across resets)
        self.index = {f: {} for f in IDENTIFIERS}   # identifier -> _ident_key(value) -> id
        self.lists = {}          # id -> {"id","name","created","updated","opt_in_process","members":[ids]}
        self.jobs = {}           # id -> job
        self.job_order = []
        self.job_queue = []      # job ids not yet applied, FIFO
        self.rate = {}           # (account, op_id, window_name) -> {window_index: count}
        self.faults = {}
        self.req_counts = {}     # "op_id" -> {"status": n}
        self.throttled = {}      # op_id -> n
        self.faults_injected = {}
        self.recent = []         # last 200 requests (no secrets, no bodies)
        self.response_violations = []
        self.retry_after_until = {}       # (key, op_id) -> {answered, until}: a 429's answer written, its wait's end
        self.retry_after_violations = []  # requests sent before that time (>= 50 ms early)
        self.generation += 1
        self.epoch = time.monotonic()   # rate-limit windows are aligned to the last reset

    def reset(self, config_too=False):
        with self.lock:
            if config_too:
                self.config = copy.deepcopy(self.base_config)
            self._reset_locked()
            self.cond.notify_all()

    def configure(self, changes):
        """Merges changes (keys of DEFAULT_CONFIG, checked by the caller) into the config; a new
        seed reseeds the RNGs. Returns a copy of the resulting config."""
        with self.lock:
            self.config.update(changes)
            if "seed" in changes:
                self._seed(changes["seed"])
            self.cond.notify_all()
            return copy.deepcopy(self.config)

    def stop(self):
        """Ends the job thread."""
        with self.lock:
            self.stopping = True
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

    # -- profiles ----------------------------------------------------------------------------
    def _reindex(self, p, field, old=None):
        idx = self.index[field]
        if old:
            k = _ident_key(field, old)
            if idx.get(k) == p["id"]:
                del idx[k]
        v = p.get(field)
        if v:
            idx[_ident_key(field, v)] = p["id"]

    def _holders(self, attrs):
        """(field, profile id) for each identifier in attrs that a profile already holds, in the
        order of IDENTIFIERS."""
        for field in IDENTIFIERS:
            v = attrs.get(field)
            holder = self.index[field].get(_ident_key(field, v)) if v else None
            if holder:
                yield field, holder

    def find_profile(self, attrs, pid=None):
        """Klaviyo identity rules, simplified: id, then email, then phone_number, then external_id."""
        if pid:
            return self.profiles.get(pid)
        for _, holder in self._holders(attrs):
            return self.profiles[holder]
        return None

    def new_profile(self):
        t = now_iso()
        p = {"id": self.new_id("profile"), "email": None, "phone_number": None, "external_id": None,
             "first_name": None, "last_name": None, "organization": None, "locale": None, "title": None,
             "image": None, "created": t, "updated": t, "last_event_date": None, "location": {},
             "properties": {}, "subscriptions": {}}
        self.profiles[p["id"]] = p
        self.profile_seq[p["id"]] = len(self.profile_seq)  # creation order, for indexed lookups
        return p

    def identifier_conflict(self, p, attrs):
        """Field name whose value already belongs to another profile, else None."""
        for field, holder in self._holders(attrs):
            if p is None or holder != p["id"]:
                return field
        return None

    def apply_profile_attrs(self, p, attrs, meta):
        """Upsert semantics of profile-import: absent = unchanged, null = cleared (also a key of
        location/properties); location/properties merged."""
        for field in IDENTIFIERS:
            if field in attrs:
                old = p.get(field)
                p[field] = attrs[field]
                self._reindex(p, field, old)
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

    # -- dump --------------------------------------------------------------------------------
    def counts(self, prop=None):
        """What benchmarks poll while a backlog drains: request and 429 counts, lists, members,
        profiles, profiles per marketing consent per channel, and with prop the profiles per
        value of that custom property and the list members per value ("" for none). Cheap (dump() copies everything under the lock the API
        handlers wait on)."""
        with self.lock:
            consent = {}
            for p in self.profiles.values():
                for ch, sub in p["subscriptions"].items():
                    c = (sub.get("marketing") or {}).get("consent")
                    if c:
                        consent.setdefault(ch, {})
                        consent[ch][c] = consent[ch].get(c, 0) + 1
            out = copy.deepcopy({
                "requests": self.req_counts,
                "throttled": self.throttled,
                "max_in_flight": self.max_in_flight,
                "lists": len(self.lists),
                "members": sum(len(l["members"]) for l in self.lists.values()),
                "profiles": len(self.profiles),
                "consent": consent,
            })
            if prop:
                values = {}
                for p in self.profiles.values():
                    v = p["properties"].get(prop)
                    if v is not None:
                        values[str(v)] = values.get(str(v), 0) + 1
                out["property"] = {prop: values}
                members = {}
                for l in self.lists.values():
                    for m in l["members"]:
                        p = self.profiles.get(m)
                        v = p["properties"].get(prop) if p else None
                        v = "" if v is None else str(v)
                        members[v] = members.get(v, 0) + 1
                out["member_property"] = {prop: members}
            return out

    def dump(self):
        # A deep copy made under the lock: the job thread keeps changing the live objects while
        # the caller serialises the answer.
        with self.lock:
            def pub(j):
                return {k: v for k, v in j.items() if not k.startswith("_")}
            return copy.deepcopy({
                "config": self.config,
                "faults": self.faults,
                "lists": [dict(l, member_emails=[self.profiles[m]["email"] for m in l["members"] if m in self.profiles])
                          for l in self.lists.values()],
                "profiles": list(self.profiles.values()),
                "jobs": [pub(self.jobs[j]) for j in self.job_order],
                "requests": self.req_counts,
                "throttled": self.throttled,
                "max_in_flight": self.max_in_flight,
                "faults_injected": self.faults_injected,
                "recent_requests": self.recent,
                "response_violations": self.response_violations,
                "retry_after_violations": self.retry_after_violations,
            })
