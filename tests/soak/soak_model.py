#!/usr/bin/env python3
"""soak_model.py -- the soak's input and its independent oracle, written from docs/design.md
(not from the worker's code).

  gen OUT_DIR SEED MESSAGES WAVES   wave-<n>.tsv (key<TAB>message, n = 1..WAVES), remove.tsv and
                                    expected.json
  check STATE_URL EXPECTED [-v]     exit 0 when the simulator's state equals the expectation
  check-dlq EXPECTED FILE [-v]      exit 0 when the dead-letter topic holds exactly the expected
                                    dead letters (a record repeated is allowed: at-least-once)

Input: ACCOUNTS accounts x 3 audiences ("Soak <account> <k>"; k = 2 maps consent), USERS users
each; add / delete / attribute_update with random, heavily out-of-order timestamps, version ties
(equal timestamps, decided by the lower-cased message id), consent both ways with equal purpose
timestamps across messages, one attribute ("tier") written through every audience, 5 %
of the messages produced twice (redeliveries), 1 % bad records (not JSON, or an invalid email),
and one user whose email passes the worker's validation but Klaviyo refuses.
remove.tsv (after the backlog drained): one audience removed; a change older than the removal;
the audience added again; another older change; a newer change.

The rules the oracle applies (docs/design.md §1, §3, §4):
- membership of (audience, user) = the newest add/delete by (timestamp_ms, lower-case id);
- each attribute path of (account, user) = the value of the newest add/attribute_update that
  carried it, whichever audience it came through; a delete carries none;
- email consent of (account, user) = the consent with the newest purpose timestamp, the
  unsubscribe winning a tie; consent never changes membership;
- exactly one Klaviyo list per audience name;
- a removed audience drops every change at or before the removal's version, also after the
  audience is added again; the list and its members stay.
"""
import json
import random
import sys
import os

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import klaviyo_state  # noqa: E402

ACCOUNTS = [5001, 5002, 5003, 5004]
USERS = 100
T0 = 1764288000000
CONSENT = json.dumps([{"map": "marketing", "value": "email_marketing"}])
REFUSED = 'soak"refused@example.net'  # valid for the worker, refused by Klaviyo
REMOVED = (5001, 3)


def key_of(acct):
    return "pk_soak_%d_key" % acct


def name_of(acct, k):
    return "Soak %d %d" % (acct, k)


def email_of(acct, i):
    return REFUSED if (acct, i) == (5001, 0) else "s%d-u%03d@example.net" % (acct, i)


class Model:
    def __init__(self):
        self.member = {}   # (acct, k, email) -> (version, action)
        self.attrs = {}    # (acct, email, path) -> (version, value)
        self.consent = {}  # (acct, email) -> (purpose ts, unsubscribe rank, consented)
        self.disabled = {}  # (acct, k) -> removal version

    def dropped(self, acct, k, ts):
        d = self.disabled.get((acct, k))
        return d is not None and ts <= d

    def apply(self, acct, k, ts, mid, email, action, attrs, consent):
        if self.dropped(acct, k, ts):
            return
        v = (ts, mid.lower())
        if action != "attribute_update":
            cur = self.member.get((acct, k, email))
            if cur is None or v > cur[0]:
                self.member[(acct, k, email)] = (v, action)
        if action != "delete":
            for path, val in attrs.items():
                cur = self.attrs.get((acct, email, path))
                if cur is None or v > cur[0]:
                    self.attrs[(acct, email, path)] = (v, val)
        if consent is not None:
            cts, c = consent
            cv = (cts, 0 if c else 1)
            cur = self.consent.get((acct, email))
            if cur is None or cv > cur[:2]:
                self.consent[(acct, email)] = cv + (c,)


def membership(acct, mid, ts, profiles):
    return {"type": "audience_membership_change_request", "id": mid, "timestamp_ms": ts,
            "account": {"account_id": acct, "account_settings": {"apiKey": key_of(acct)}},
            "user_profiles": profiles}


def subscription(acct, k, mid, ts, action):
    m = {"type": "audience_subscription_request", "id": mid, "timestamp_ms": ts,
         "account": {"account_id": acct, "account_settings": {"apiKey": key_of(acct)}},
         "audience_id": acct * 10 + k, "action": action}
    if action != "remove":
        m["audience_name"] = name_of(acct, k)
        m["audience_subscription_settings"] = {}
    return m


def profile(acct, k, email, action, attrs, consent):
    a = {"audience_id": acct * 10 + k, "audience_name": name_of(acct, k), "action": action,
         "audience_subscription_settings": {"consentMapping": CONSENT} if k == 2 else {}}
    if action != "delete":
        a["user_attributes"] = [{"key": p, "value": v, "action": "upsert"} for p, v in attrs.items()]
    p = {"mpid": email, "user_identities": [{"type": "email", "encoding": "raw", "value": email}],
         "audiences": [a]}
    if consent is not None:
        p["consent_state"] = {"gdpr": {"marketing": {"consented": consent[1],
                                                     "timestamp_unixtime_ms": consent[0]}}}
    return p


def line(key, msg):
    return "%s\t%s\n" % (key, json.dumps(msg, separators=(",", ":")))


def gen(out, seed, n_msgs, waves):
    rnd = random.Random(seed)
    model = Model()
    recs = []           # (key, text)
    bad_payloads, bad_ids = [], []
    for n in range(n_msgs):
        mid = "soak-%06d%s" % (n, rnd.choice("abcXYZ"))
        acct = rnd.choice(ACCOUNTS)
        if rnd.random() < 0.01:  # a bad record
            if rnd.random() < 0.5:
                text = "not json {%d" % n
                bad_payloads.append(text)
                recs.append(("bad-%d" % n, text))
            else:
                ts = T0 + rnd.randrange(0, 200000)
                m = membership(acct, mid, ts, [profile(acct, 1, "no-at-sign-%d.example.net" % n,
                                                       "add", {}, None)])
                bad_ids.append(mid)
                recs.append(("bad-%d" % n, json.dumps(m, separators=(",", ":"))))
            continue
        k = rnd.choice([1, 2, 3])
        # coarse timestamps make ties between messages common
        ts = T0 + rnd.randrange(0, 200) * 1000 + (0 if rnd.random() < 0.3 else rnd.randrange(1000))
        profiles = []
        for i in rnd.sample(range(USERS), rnd.randint(1, 3)):
            email = email_of(acct, i)
            action = rnd.choice(["add", "add", "add", "delete", "attribute_update"])
            if email == REFUSED:
                action, k_user = "add", 1
            else:
                k_user = k
            attrs = {"$FirstName": "First%d" % i, "$LastName": "Last%d" % i,
                     "score_%d" % k_user: str(ts), "tier": "t%d-%s" % (ts, mid.lower())}
            consent = None
            if k_user == 2 and email != REFUSED:
                # purpose timestamps on a coarse grid: equal ones (ties) are frequent
                consent = (T0 + rnd.randrange(0, 12) * 1000, rnd.random() < 0.6)
            profiles.append(profile(acct, k_user, email, action, attrs, consent))
            model.apply(acct, k_user, ts, mid, email, action, attrs, consent)
        m = membership(acct, mid, ts, profiles)
        recs.append((str(acct), json.dumps(m, separators=(",", ":"))))
        if rnd.random() < 0.05:  # a redelivery
            recs.append((str(acct), json.dumps(m, separators=(",", ":"))))
    rnd.shuffle(recs)
    per = (len(recs) + waves - 1) // waves
    for w in range(waves):
        with open("%s/wave-%d.tsv" % (out, w + 1), "w") as f:
            for key, text in recs[w * per:(w + 1) * per]:
                f.write("%s\t%s\n" % (key, text))

    # The removal phase, produced after the backlog drained, on one partition (one key).
    acct, k = REMOVED
    tr = T0 + 400000
    late_old = [email_of(acct, USERS + 1), email_of(acct, USERS + 2)]
    late_new = email_of(acct, USERS + 3)
    steps = [
        subscription(acct, k, "soak-rm-1", tr, "remove"),
        membership(acct, "soak-rm-2", tr - 1, [profile(acct, k, late_old[0], "add", {"tier": "dropped"}, None)]),
        subscription(acct, k, "soak-rm-3", tr + 10, "add"),
        membership(acct, "soak-rm-4", tr - 2, [profile(acct, k, late_old[1], "add", {"tier": "dropped"}, None)]),
        membership(acct, "soak-rm-5", tr + 20, [profile(acct, k, late_new, "add", {"tier": "late"}, None)]),
    ]
    model.disabled[(acct, k)] = tr
    model.apply(acct, k, tr - 1, "soak-rm-2", late_old[0], "add", {"tier": "dropped"}, None)
    model.apply(acct, k, tr - 2, "soak-rm-4", late_old[1], "add", {"tier": "dropped"}, None)
    model.apply(acct, k, tr + 20, "soak-rm-5", late_new, "add", {"tier": "late"}, None)
    with open("%s/remove.tsv" % out, "w") as f:
        for m in steps:
            f.write(line("remove-phase", m))

    lists = {}
    for (a, kk, email), (v, action) in model.member.items():
        lists.setdefault(name_of(a, kk), [])
        if action == "add" and email != REFUSED:
            lists[name_of(a, kk)].append(email)
    names, props, consent = {}, {}, {}
    for (a, email, path), (v, val) in model.attrs.items():
        if email == REFUSED:
            continue
        if path == "$FirstName":
            names.setdefault(email, [None, None])[0] = val
        elif path == "$LastName":
            names.setdefault(email, [None, None])[1] = val
        else:
            props.setdefault(email, {})[path] = val
    for (a, email), (cts, rank, c) in model.consent.items():
        consent[email] = "SUBSCRIBED" if c else "UNSUBSCRIBED"
    refused = any(e == REFUSED for (_, _, e) in model.member)
    exp = {"lists": {k: sorted(v) for k, v in lists.items()},
           "names": names, "props": props, "consent": consent,
           "dlq": {"decode/not_json": sorted(set(bad_payloads)),
                   "map/invalid_email": sorted(set(bad_ids)),
                   "flush/klaviyo": [REFUSED] if refused else []},
           "records": len(recs) + len(steps),
           "changes": sum(1 for _ in model.member) + len(model.attrs)}
    json.dump(exp, open("%s/expected.json" % out, "w"), indent=1, sort_keys=True)
    print(len(recs))


def check(url, exp_path, verbose):
    exp = json.load(open(exp_path))
    st = klaviyo_state.load(url)
    problems = klaviyo_state.list_problems(st, exp["lists"], only_expected=True)
    counts = {}
    for lst in st["lists"]:
        counts[lst["name"]] = counts.get(lst["name"], 0) + 1
    dup = sorted(n for n, c in counts.items() if c > 1)
    extra = sorted(n for n in counts if n not in exp["lists"])
    by_email = klaviyo_state.profiles_by_email(st)
    members = set().union(*[set(v) for v in exp["lists"].values()]) if exp["lists"] else set()
    regressed = 0
    for e, (first, last) in exp["names"].items():
        if e not in members:
            continue  # a consent or attribute job alone may create a profile without names
        p = by_email.get(e)
        if p is None or (p.get("first_name"), p.get("last_name")) != (first, last):
            regressed += 1
            problems.append("%s names %r" % (e, p and (p.get("first_name"), p.get("last_name"))))
    for e, want in exp["props"].items():
        got = ((by_email.get(e) or {}).get("properties") or {})
        for k, v in want.items():
            if got.get(k) != v:
                regressed += 1
                problems.append("%s %s=%r want %r" % (e, k, got.get(k), v))
    for e, want in exp["consent"].items():
        p = by_email.get(e)
        got = (((p or {}).get("subscriptions") or {}).get("email") or {}).get("marketing") or {}
        if got.get("consent", "NEVER_SUBSCRIBED") != want:
            regressed += 1
            problems.append("%s consent %r want %r" % (e, got.get("consent"), want))
    if any(((p.get("properties") or {}).get("tier")) == "dropped" for p in st["profiles"]):
        problems.append("a change older than its audience's removal reached Klaviyo")
    if st.get("retry_after_violations"):
        problems.append("%d requests before their Retry-After" % len(st["retry_after_violations"]))
    got_members = {}
    for lst in st["lists"]:
        got_members.setdefault(lst["name"], set()).update(lst["member_emails"])
    missing = sum(len(set(v) - got_members.get(n, set())) for n, v in exp["lists"].items())
    extra_members = sum(len(got_members.get(n, set()) - set(v)) for n, v in exp["lists"].items())
    want_members = sum(len(v) for v in exp["lists"].values())
    facets = sum(len(v) for v in exp["props"].values()) + len(exp["consent"]) + len(exp["names"])
    if verbose:
        print("soak oracle: %d lists, %d duplicate, %d unexpected; members %d expected, %d missing, "
              "%d extra; %d profile facets checked, %d regressed; %d Retry-After violations"
              % (len(counts), len(dup), len(extra), want_members, missing, extra_members, facets,
                 regressed, len(st.get("retry_after_violations") or [])))
    return klaviyo_state.report(problems, verbose)


def check_dlq(exp_path, path, verbose):
    exp = json.load(open(exp_path))
    got = {k: set() for k in exp["dlq"]}
    problems = []
    for raw in open(path, "rb"):
        if not raw.strip():
            continue
        r = json.loads(raw.decode("utf-8", "replace"))
        h = r.get("headers") or []
        hd = {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}
        stage, reason, payload = hd.get("aw.stage"), hd.get("aw.reason", ""), r.get("payload") or ""
        if stage == "decode" and reason == "not_json":
            got["decode/not_json"].add(payload)
        elif stage == "map" and reason == "invalid_email":
            got["map/invalid_email"].add(json.loads(payload).get("id"))
        elif stage == "flush" and reason.startswith("klaviyo_"):
            got["flush/klaviyo"].add(((json.loads(payload).get("profile")) or {}).get("email"))
        else:
            problems.append("unexpected dead letter %s/%s" % (stage, reason))
    for k, want in exp["dlq"].items():
        if sorted(got[k]) != sorted(want):
            problems.append("%s: %d dead-lettered, want %d (missing %d, extra %d)" % (
                k, len(got[k]), len(want), len(set(want) - got[k]), len(got[k] - set(want))))
    if verbose:
        for p in problems:
            print("  " + p)
        print("soak dead letters: " + ", ".join("%s %d" % (k, len(v)) for k, v in sorted(got.items())))
    return not problems


if __name__ == "__main__":
    cmd, verbose = sys.argv[1], "-v" in sys.argv
    if cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "check":
        sys.exit(0 if check(sys.argv[2], sys.argv[3], verbose) else 1)
    elif cmd == "check-dlq":
        sys.exit(0 if check_dlq(sys.argv[2], sys.argv[3], verbose) else 1)
    else:
        sys.exit(__doc__)
