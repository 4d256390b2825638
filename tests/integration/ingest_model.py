#!/usr/bin/env python3
"""ingest_model.py -- input generator and independent oracle for test_ingest.sh.

  gen OUT_DIR SEED        writes part1.tsv part2.tsv part3.tsv (key<TAB>payload lines) and
                          expected.json (pending state per audience and the dead-letter set)
  check-redis EXPECTED PORT   exit 0 when Redis' pending state equals the expectation exactly
  check-dlq EXPECTED FILE     exit 0 when the dead-letter records (kcat -J lines) are exactly the
                              expected set (duplicates from at-least-once redelivery allowed)

The oracle is written from docs/design.md, not from the worker's code: for every (audience, user) the
pending membership entry is the action of the newest message (timestamp_ms, then the greater
lower-case id); attributes belong to the account's profile, shared by its audiences (DESIGN §1):
an add carries first_name, and the user's first_name is the one of its newest add across all
audiences; every user with an add waits in the account's profile stream. Layout read here:
docs/redis.md (aw:{<account>}:a:<audience>:p, aw:{<account>}:u:<email>, aw:{<account>}:p:p).
"""
import json
import random
import subprocess
import sys

from store_state import attrs

ACCOUNT = "1001"
AUDIENCES = {"11": "Newsletter", "12": "VIP customers", "13": "Churn risk"}
USERS = ["user%02d@example.com" % i for i in range(40)]
BASE_TS = 1714592744000


def membership(msg_id, ts, profiles):
    return {
        "type": "audience_membership_change_request",
        "id": msg_id,
        "timestamp_ms": ts,
        "firehose_version": "3.2.0",
        "account": {"account_id": int(ACCOUNT), "account_settings": {"apiKey": "pk_test_ingest"}},
        "user_profiles": profiles,
    }


def profile(email, audiences, encoding="raw"):
    return {
        "mpid": str(abs(hash(email)) % 10**12),
        "user_identities": [{"type": "email", "encoding": encoding, "value": email}],
        "audiences": audiences,
    }


def audience(aud, action, ts):
    a = {"audience_id": int(aud), "audience_name": AUDIENCES[aud], "action": action}
    if action == "add":
        a["user_attributes"] = [{"key": "$FirstName", "value": "n%d" % ts, "action": "upsert"}]
    return a


def gen(out_dir, seed):
    rnd = random.Random(seed)
    records = []     # (key, payload_text)
    newest = {}      # (aud, email) -> (ts, id_lower, action)
    newest_add = {}  # email -> (ts, id_lower): the profile's first_name comes from it
    dlq = []         # [reason, ident]; ident = payload for decode stage, message id for map stage

    def note_change(aud, email, ts, mid, action):
        k = (aud, email)
        v = (ts, mid.lower(), action)
        if k not in newest or v[:2] > newest[k][:2]:
            newest[k] = v
        if action == "add" and (email not in newest_add or v[:2] > newest_add[email]):
            newest_add[email] = v[:2]

    for aud, name in AUDIENCES.items():
        sub = {"type": "audience_subscription_request", "id": "sub-%s" % aud,
               "timestamp_ms": BASE_TS, "account": {"account_id": int(ACCOUNT),
                                                    "account_settings": {"apiKey": "pk_test_ingest"}},
               "audience_id": int(aud), "audience_name": name, "action": "add"}
        records.append(("sub-%s" % aud, json.dumps(sub)))

    for n in range(600):
        # Timestamps deliberately out of production order; some ties with different ids.
        ts = BASE_TS + 1000 + rnd.randrange(0, 5000)
        mid = "m-%04d-%s" % (n, rnd.choice("abcdefABCDEF"))
        profiles = []
        for email in rnd.sample(USERS, rnd.randint(1, 3)):
            auds = []
            for aud in rnd.sample(sorted(AUDIENCES), rnd.randint(1, 2)):
                action = rnd.choice(["add", "add", "delete"])
                auds.append(audience(aud, action, ts))
                note_change(aud, email, ts, mid, action)
            profiles.append(profile(email.upper() if rnd.random() < 0.2 else email, auds))
        if n % 40 == 7:
            # A hashed email: that profile is dead-lettered, the rest of the message goes on.
            profiles.append(profile("5d41402abc4b2a76b9719d911017c592",
                                    [audience("11", "add", ts)], encoding="md5"))
            dlq.append(["hashed_email", mid])
        records.append((rnd.choice(USERS), json.dumps(membership(mid, ts, profiles),
                                                       separators=(",", ":"))))

    bad = []
    for n in range(12):
        bad.append(("not_json", "this is not json %d {" % n))
    for n in range(6):
        bad.append(("unknown_type", json.dumps({"type": "audience_delete_request",
                                                  "id": "u-%d" % n, "timestamp_ms": BASE_TS})))
    for n in range(6):
        m = membership("x", BASE_TS, [])
        del m["id"]
        m["firehose_version"] = "3.2.%d" % n
        bad.append(("missing_field", json.dumps(m)))
    for reason, text in bad:
        records.insert(rnd.randrange(3, len(records)), ("bad", text))
        dlq.append([reason, text])

    third = len(records) // 3
    parts = [records[:third], records[third:2 * third], records[2 * third:]]
    for i, part in enumerate(parts, 1):
        with open("%s/part%d.tsv" % (out_dir, i), "w") as f:
            for key, text in part:
                assert "\t" not in text and "\n" not in text
                f.write("%s\t%s\n" % (key, text))

    pending = {}
    for (aud, email), (ts, mid, action) in newest.items():
        pending.setdefault(aud, {})[email] = "%s%d:%s" % (action[0], ts, mid)
    profiles = {email: json.dumps("n%d" % ts) for email, (ts, _mid) in newest_add.items()}
    with open("%s/expected.json" % out_dir, "w") as f:
        json.dump({"account": ACCOUNT, "pending": pending, "profiles": profiles, "dlq": dlq,
                   "records": len(records)}, f, indent=1, sort_keys=True)


def redis(port, *args):
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--no-raw"] + list(args),
                         capture_output=True, text=True, timeout=10)
    return out.stdout


def hgetall(port, key):
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--raw", "HGETALL", key],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return dict(zip(lines[0::2], lines[1::2]))


def hget(port, key, field):
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--raw", "HGET", key,
                           field], capture_output=True, text=True, timeout=10).stdout.rstrip("\n")


def check_redis(expected_path, port, verbose):
    exp = json.load(open(expected_path))
    acct = exp["account"]
    ok = True

    def differ(what, want, got):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(e for e in set(want) & set(got) if want[e] != got[e])
        print("%s: %d expected, %d found; missing %s extra %s wrong %s"
              % (what, len(want), len(got), missing[:3], extra[:3],
                 [(e, want[e], got[e]) for e in wrong[:3]]))

    for aud, users in sorted(exp["pending"].items()):
        key = "aw:{%s}:a:%s" % (acct, aud)
        got = hgetall(port, key + ":p")
        if got != users:
            ok = False
            if verbose:
                differ("audience %s" % aud, users, got)
        queued = redis(port, "LLEN", key + ":q").strip().split()[-1:]
        if queued != [str(len(got))]:
            ok = False
            if verbose:
                print("audience %s: queue %s, pending %d" % (aud, queued, len(got)))
        if hget(port, key, "name") != AUDIENCES[aud]:
            ok = False
            if verbose:
                print("audience %s: meta name %r" % (aud, hget(port, key, "name")))
    waiting = hgetall(port, "aw:{%s}:p:p" % acct)
    if sorted(waiting) != sorted(exp["profiles"]):
        ok = False
        if verbose:
            differ("profile stream", {e: "1" for e in exp["profiles"]}, waiting)
    got = {e: attrs(hget(port, "aw:{%s}:u:%s" % (acct, e), "at")).get("first_name", "")
           for e in exp["profiles"]}
    if got != exp["profiles"]:
        ok = False
        if verbose:
            differ("profiles' first_name", exp["profiles"], got)
    return ok


def check_dlq(expected_path, records_path, verbose):
    exp = json.load(open(expected_path))
    want = sorted(tuple(x) for x in exp["dlq"])
    got = set()
    bad_headers = 0
    for line in open(records_path):
        if not line.strip():
            continue
        r = json.loads(line)
        h = r.get("headers") or []
        hd = {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}
        for name in ("aw.reason", "aw.stage", "aw.source.topic", "aw.source.partition",
                     "aw.source.offset"):
            if name not in hd:
                bad_headers += 1
        reason = hd.get("aw.reason")
        if hd.get("aw.stage") == "map":
            env = json.loads(r["payload"])
            ident = env.get("id")
            if env.get("reason") != reason or env.get("profile", {}).get("user_identities", [{}])[0].get("encoding") != "md5":
                bad_headers += 1
        else:
            ident = r["payload"]
        got.add((reason, ident))
    ok = sorted(got) == want and bad_headers == 0
    if not ok and verbose:
        print("dlq: want %d distinct, got %d; missing %s; unexpected %s; header problems %d"
              % (len(want), len(got), sorted(set(want) - got)[:3], sorted(got - set(want))[:3],
                 bad_headers))
    return ok


def main():
    cmd = sys.argv[1]
    verbose = "-v" in sys.argv
    if cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]))
        return 0
    if cmd == "check-redis":
        return 0 if check_redis(sys.argv[2], sys.argv[3], verbose) else 1
    if cmd == "check-dlq":
        return 0 if check_dlq(sys.argv[2], sys.argv[3], verbose) else 1
    print("unknown command", cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
