#!/usr/bin/env python3
"""e2e_model.py -- input and oracle of test_e2e.sh (issue "Leader and flush", done-when).

  gen OUT_DIR SEED            part1.tsv part2.tsv (key<TAB>message) and expected.json
  check STATE_URL EXPECTED    exit 0 when the simulator's state equals the expectation exactly
  check-dlq EXPECTED FILE     exit 0 when the dead-letter topic holds exactly the expected records

Account 3001 (valid key): audience 31 "E2E Alpha" (150 users: flushed by count), audience 32
"E2E Beta" (30 users, consent mapped: flushed by age). Random add / delete / attribute_update
with out-of-order timestamps, ties and collapsed add->delete sequences. Account 3002: its key
is refused by Klaviyo (401), so it must stay paused with its data kept while 3001 flows.

The oracle follows docs/design.md: membership of (audience, user) = the newest add/delete; the
profile is shared by the account's audiences (§1): a property ("score_<aud>") = the value of the
newest add/attribute_update that carried it (a delete only removes from the list); email
consent = the consent with the newest purpose timestamp (its own version, §3; at equal
timestamps the unsubscribe wins); profile fields constant per user. One user's email (with a double quote) passes the worker's
validation but Klaviyo refuses it: exactly that record is dead-lettered at the flush stage.
"""
import json
import random
import sys

import klaviyo_state

GOOD, BAD = 3001, 3002
GOOD_KEY, BAD_KEY = "pk_e2e_good_key", "pk_e2e_revoked_key"
NAMES = {31: "E2E Alpha", 32: "E2E Beta", 33: "E2E Gamma"}
CONSENT = json.dumps([{"map": "marketing", "value": "email_marketing"}])
T0 = 1764288000000
QUOTED = 'quote"me@example.net'


def email(i):
    return QUOTED if i == 7 else "e2e-user%03d@example.net" % i


def settings(aud):
    return {"consentMapping": CONSENT} if aud == 32 else {}


def gen(out, seed):
    rnd = random.Random(seed)
    recs = []
    newest = {}       # (aud, i) -> (ts, id, action)
    score = {}        # (aud, i) -> (ts, id, value or None)
    consent = {}      # i -> (consent ts, unsubscribe rank, bool)
    n = 0
    users = {31: list(range(150)), 32: list(range(30))}
    for k in range(520):
        n += 1
        mid = "e2e-%05d%s" % (n, rnd.choice("abcXYZ"))
        ts = T0 + rnd.randrange(0, 4000) if k < 500 else T0 + 10000 + k  # last ones: newest
        aud = 31 if rnd.random() < 0.7 else 32
        profiles = []
        for i in rnd.sample(users[aud], rnd.randint(1, 3)):
            act = rnd.choice(["add", "add", "add", "delete", "attribute_update"])
            if i == 7:
                act = "add"  # the email Klaviyo refuses: only ever uploaded, never looked up
            a = {"audience_id": aud, "audience_name": NAMES[aud], "action": act,
                 "audience_subscription_settings": settings(aud)}
            if act != "delete":
                a["user_attributes"] = [
                    {"key": "$FirstName", "value": "First%d" % i, "action": "upsert"},
                    {"key": "$LastName", "value": "Last%d" % i, "action": "upsert"},
                    {"key": "score_%d" % aud, "value": str(ts), "action": "upsert"}]
            p = {"mpid": str(i), "user_identities": [
                {"type": "email", "encoding": "raw", "value": email(i)}], "audiences": [a]}
            v = (ts, mid.lower())
            if aud == 32:
                c = rnd.random() < 0.6
                cts = ts - 1000 - rnd.randrange(0, 3) * 1000  # ties across messages happen
                p["consent_state"] = {"gdpr": {"marketing": {
                    "consented": c, "timestamp_unixtime_ms": cts}}}
                cv = (cts, 0 if c else 1)
                if i not in consent or cv > consent[i][:2]:
                    consent[i] = cv + (c,)
            if act != "attribute_update" and ((aud, i) not in newest or v > newest[(aud, i)][:2]):
                newest[(aud, i)] = v + (act,)
            if act != "delete" and ((aud, i) not in score or v > score[(aud, i)][:2]):
                score[(aud, i)] = v + (str(ts),)
            profiles.append(p)
        recs.append((email(profiles[0]["mpid"] and int(profiles[0]["mpid"])),
                     {"type": "audience_membership_change_request", "id": mid, "timestamp_ms": ts,
                      "account": {"account_id": GOOD, "account_settings": {"apiKey": GOOD_KEY}},
                      "user_profiles": profiles}))
    for i in range(20):   # the paused account
        n += 1
        recs.append(("bad-%d" % i, {
            "type": "audience_membership_change_request", "id": "e2e-b%03d" % i,
            "timestamp_ms": T0 + i, "account": {"account_id": BAD, "account_settings": {"apiKey": BAD_KEY}},
            "user_profiles": [{"user_identities": [{"type": "email", "encoding": "raw",
                                                    "value": "gamma%02d@example.net" % i}],
                               "audiences": [{"audience_id": 33, "audience_name": NAMES[33],
                                              "action": "add"}]}]}))
    rnd.shuffle(recs)
    half = len(recs) // 2
    for name, part in (("part1", recs[:half]), ("part2", recs[half:])):
        with open("%s/%s.tsv" % (out, name), "w") as f:
            for key, msg in part:
                f.write("%s\t%s\n" % (key, json.dumps(msg, separators=(",", ":"))))

    lists = {NAMES[31]: [], NAMES[32]: []}
    props = {}
    for (aud, i), (ts, mid, act) in newest.items():
        if act == "add" and i != 7:
            lists[NAMES[aud]].append(email(i))
    for (aud, i), (ts, mid, val) in score.items():
        if val is not None and i != 7:
            props.setdefault(email(i), {})["score_%d" % aud] = val
    exp = {"lists": {k: sorted(v) for k, v in lists.items()},
           "absent_lists": [NAMES[33]],
           "scores": props,
           "names": {email(i): ["First%d" % i, "Last%d" % i] for i in range(150) if i != 7},
           "consent": {email(i): ("SUBSCRIBED" if c else "UNSUBSCRIBED")
                       for i, (cts, rank, c) in consent.items() if i != 7},
           "dlq_emails": [QUOTED] if (31, 7) in newest or (32, 7) in newest else [],
           "bad_account_users": 20}
    json.dump(exp, open("%s/expected.json" % out, "w"), indent=1, sort_keys=True)


def check(url, exp_path, verbose):
    exp = json.load(open(exp_path))
    st = klaviyo_state.load(url)
    problems = klaviyo_state.list_problems(st, exp["lists"])
    lists = {l["name"] for l in st["lists"]}
    for name in exp["absent_lists"]:
        if name in lists:
            problems.append("list %r of the paused account exists" % name)
    by_email = klaviyo_state.profiles_by_email(st)
    for e, (first, last) in exp["names"].items():
        if not any(e in m for m in exp["lists"].values()):
            continue  # a consent job alone may create a profile without names
        p = by_email.get(e)
        if p is None:
            problems.append("member %s has no profile" % e)
            continue
        if (p.get("first_name"), p.get("last_name")) != (first, last):
            problems.append("%s names %r %r" % (e, p.get("first_name"), p.get("last_name")))
    for e, scores in exp["scores"].items():
        p = by_email.get(e)
        got = {k: v for k, v in ((p or {}).get("properties") or {}).items() if k.startswith("score_")}
        for k, v in scores.items():
            if got.get(k) != v:
                problems.append("%s %s=%r want %r" % (e, k, got.get(k), v))
    for e, want in exp["consent"].items():
        p = by_email.get(e)
        got = (((p or {}).get("subscriptions") or {}).get("email") or {}).get("marketing") or {}
        if got.get("consent", "NEVER_SUBSCRIBED") != want:
            problems.append("%s consent %r want %r" % (e, got.get("consent"), want))
    if any(p.get("email", "").startswith("gamma") for p in st["profiles"]):
        problems.append("profiles of the paused account reached Klaviyo")
    return klaviyo_state.report(problems, verbose)


def check_dlq(exp_path, path, verbose):
    exp = json.load(open(exp_path))
    got = set()
    problems = []
    for line in open(path):
        if not line.strip():
            continue
        r = json.loads(line)
        h = r.get("headers") or []
        hd = {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}
        env = json.loads(r["payload"])
        if hd.get("aw.stage") != "flush" or not hd.get("aw.reason", "").startswith("klaviyo_"):
            problems.append("unexpected dead letter %s/%s" % (hd.get("aw.stage"), hd.get("aw.reason")))
        got.add(env.get("profile", {}).get("email"))
    if sorted(got) != sorted(exp["dlq_emails"]):
        problems.append("dead-lettered %s, want %s" % (sorted(got), exp["dlq_emails"]))
    if verbose:
        for p in problems:
            print("  " + p)
    return not problems


if __name__ == "__main__":
    cmd, verbose = sys.argv[1], "-v" in sys.argv
    if cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    if cmd == "check":
        sys.exit(0 if check(sys.argv[2], sys.argv[3], verbose) else 1)
    if cmd == "check-dlq":
        sys.exit(0 if check_dlq(sys.argv[2], sys.argv[3], verbose) else 1)
    sys.exit(2)
