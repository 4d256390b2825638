#!/usr/bin/env python3
"""cluster_model.py -- input generator and independent oracle of test_cluster.sh.

  gen OUT_DIR SEED MOVE_SLOTS   input.tsv and late.tsv (key<TAB>message lines), expected.json
  check-redis EXPECTED PORT     exit 0 when the pending state in the Redis Cluster (read through
                                `redis-cli -c`, which follows redirections) equals the model
  check-klaviyo EXPECTED URL    exit 0 when the simulator's lists and profiles equal the model
  pace FILE SECONDS             copy FILE's lines to stdout evenly over SECONDS (a producer's pace)

Twelve accounts, chosen by the hash slot of their tag {<account>} (CRC16/XMODEM mod 16384,
written here from the Redis Cluster specification, not from the worker's code): four whose slot
is below MOVE_SLOTS (the slots the test moves from the master serving slot 0 to another and
back while ingesting), the others spread over the rest of the slot space, so every master holds
data. Each account has two audiences and 16 users; messages carry 1-3 profiles with add /
delete / attribute_update in random order of timestamps (ties included). late.tsv holds one
more message, newer than all: user 0 of the first moving account joins or leaves that
account's first audience (the test produces it while that slot is held half migrated).

The oracle follows DESIGN.md: the membership of (audience, user) is the action of the newest
message (timestamp_ms, then the greater lower-case id); attributes belong to the account's
profile, shared by its audiences: a user's first_name and score are the ones of its newest add
or attribute_update across the account's audiences (a delete carries none); a user with any
add or attribute_update waits in the account's profile stream. Layout read here: docs/redis.md.
Klaviyo: one list per audience (by name) holding exactly the users whose newest membership is
an add; every profile with attributes carries the newest first_name and score.
"""
import json
import random
import subprocess
import sys
import time

import klaviyo_state
from store_state import attrs

BASE_TS = 1764547200000
N_ACCOUNTS, N_MOVING, N_USERS, N_MESSAGES = 12, 4, 16, 2400


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(account):
    return crc16(account.encode()) % 16384


def pick_accounts(move_slots):
    """N_MOVING accounts below move_slots, the rest spread over the three thirds of the slot
    space (the default layout of a 3-master cluster), first ids found from 7001 upward."""
    moving, others = [], {0: [], 1: [], 2: []}
    per_third = (N_ACCOUNTS - N_MOVING) // 3 + 1
    n = 7000
    while len(moving) < N_MOVING or sum(len(v) for v in others.values()) < N_ACCOUNTS - N_MOVING:
        n += 1
        a = str(n)
        s = slot(a)
        if s < move_slots:
            if len(moving) < N_MOVING:
                moving.append(a)
            continue
        third = min(s * 3 // 16384, 2)
        if len(others[third]) < per_third and \
                sum(len(v) for v in others.values()) < N_ACCOUNTS - N_MOVING:
            others[third].append(a)
    return moving, [a for t in sorted(others) for a in others[t]]


def email(acct, i):
    return "c%s-user%02d@example.org" % (acct, i)


def list_name(acct, aud):
    return "Cluster %s/%s" % (acct, aud)


def gen(out_dir, seed, move_slots):
    rnd = random.Random(seed)
    moving, others = pick_accounts(move_slots)
    accounts = moving + others
    auds = {a: [a + "1", a + "2"] for a in accounts}
    newest = {}  # (acct, aud, i) -> (ts, id, action)
    attrs = {}   # (acct, i) -> (ts, id, attributes): the change whose attributes are the profile's

    def message(acct, ts, mid, changes, upper):
        """changes: [(user, [(audience, action), ...]), ...] -> one key<TAB>message line."""
        v = (ts, mid.lower())
        profiles = []
        for i, acts in changes:
            entries = []
            for aud, act in acts:
                e = {"audience_id": int(aud), "audience_name": list_name(acct, aud),
                     "action": act}
                if act != "delete":
                    a = {"first_name": "n%d" % ts, "score": "%d-%s" % (ts, mid)}
                    e["user_attributes"] = [
                        {"key": "$FirstName", "value": a["first_name"], "action": "upsert"},
                        {"key": "score", "value": a["score"], "action": "upsert"}]
                    if (acct, i) not in attrs or v > attrs[(acct, i)][:2]:
                        attrs[(acct, i)] = v + (a,)
                if act != "attribute_update":
                    k = (acct, aud, i)
                    if k not in newest or v > newest[k][:2]:
                        newest[k] = v + (act,)
                entries.append(e)
            profiles.append({"mpid": "%s%02d" % (acct, i), "user_identities": [
                {"type": "email", "encoding": "raw",
                 "value": email(acct, i).upper() if upper else email(acct, i)}],
                "audiences": entries})
        msg = {"type": "audience_membership_change_request", "id": mid, "timestamp_ms": ts,
               "firehose_version": "3.2.0",
               "account": {"account_id": int(acct),
                           "account_settings": {"apiKey": "pk_cluster_%s" % acct}},
               "user_profiles": profiles}
        return "%s\t%s\n" % (profiles[0]["mpid"], json.dumps(msg, separators=(",", ":")))

    lines = []
    for n in range(N_MESSAGES):
        acct = rnd.choice(accounts)
        changes = []
        for i in rnd.sample(range(N_USERS), rnd.randint(1, 3)):
            changes.append((i, [(aud, rnd.choice(["add", "add", "delete", "attribute_update"]))
                                for aud in rnd.sample(auds[acct], rnd.randint(1, 2))]))
        lines.append(message(acct, BASE_TS + rnd.randrange(0, 4000),
                             "cl-%05d-%s" % (n, rnd.choice("abcXYZ")), changes,
                             rnd.random() < 0.2))
    with open("%s/input.tsv" % out_dir, "w") as f:
        f.writelines(lines)
    # The late change (newer than all): user 0 of the first moving account leaves or joins its
    # first audience, produced while that account's slot is held half migrated.
    late_acct, late_aud = moving[0], auds[moving[0]][0]
    before = newest.get((late_acct, late_aud, 0))
    flip = "add" if before is None or before[2] == "delete" else "delete"
    with open("%s/late.tsv" % out_dir, "w") as f:
        f.write(message(late_acct, BASE_TS + 10000, "cl-late-x", [(0, [(late_aud, flip)])],
                        False))
    late = {"account": late_acct, "audience": late_aud, "email": email(late_acct, 0),
            "version_before": "%d:%s" % before[:2] if before else None}

    pending = {}
    for (acct, aud, i), (ts, mid, act) in newest.items():
        pending.setdefault(acct, {}).setdefault(aud, {})[email(acct, i)] = \
            "%s%d:%s" % (act[0], ts, mid)
    profiles = {}
    for (acct, i), (_ts, _mid, a) in attrs.items():
        profiles.setdefault(acct, {})[email(acct, i)] = a
    lists = {}
    for (acct, aud, i), (_ts, _mid, act) in newest.items():
        members = lists.setdefault(list_name(acct, aud), [])
        if act == "add":
            members.append(email(acct, i))
    exp = {"accounts": accounts, "moving": moving,
           "slots": {a: slot(a) for a in accounts},
           "audiences": auds, "pending": pending, "profiles": profiles,
           "lists": {k: sorted(v) for k, v in lists.items()}, "records": len(lines),
           "late": late}
    with open("%s/expected.json" % out_dir, "w") as f:
        json.dump(exp, f, indent=1, sort_keys=True)


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-c", "-h", "127.0.0.1", "-p", str(port), "--raw"]
                         + list(args), capture_output=True, text=True, timeout=10, check=True)
    if out.stdout.startswith(("ERR", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")):
        raise RuntimeError("redis-cli %s: %s" % (args[0], out.stdout.strip()))
    return out.stdout


def hgetall(port, key):
    lines = cli(port, "HGETALL", key).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return dict(zip(lines[0::2], lines[1::2]))


def check_redis(exp_path, port, verbose):
    exp = json.load(open(exp_path))
    problems = []

    def differ(what, want, got):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(e for e in set(want) & set(got) if want[e] != got[e])
        if missing or extra or wrong:
            problems.append("%s: %d expected, %d found; missing %s extra %s wrong %s" % (
                what, len(want), len(got), missing[:2], extra[:2],
                [(e, want[e], got[e]) for e in wrong[:2]]))

    for acct in exp["accounts"]:
        for aud in exp["audiences"][acct]:
            want = exp["pending"].get(acct, {}).get(aud, {})
            key = "aw:{%s}:a:%s" % (acct, aud)
            got = hgetall(port, key + ":p")
            differ("account %s audience %s pending" % (acct, aud), want, got)
            queued = int(cli(port, "LLEN", key + ":q").strip() or 0)
            if queued != len(got):
                problems.append("account %s audience %s: queue %d, pending %d" % (
                    acct, aud, queued, len(got)))
        want = exp["profiles"].get(acct, {})
        got = hgetall(port, "aw:{%s}:p:p" % acct)
        differ("account %s profile stream" % acct, {e: "1" for e in want},
               {e: "1" for e in got})
        for e, a in sorted(want.items()):
            u = attrs(hgetall(port, "aw:{%s}:u:%s" % (acct, e)).get("at", ""))
            got_a = {"first_name": json.loads(u.get("first_name", "null") or "null"),
                     "score": json.loads(u.get("properties.score", "null") or "null")}
            if got_a != a:
                problems.append("account %s user %s attributes %s, want %s" % (acct, e, got_a, a))
                break
    if verbose:
        for p in problems[:12]:
            print("  " + p)
    return not problems


def check_klaviyo(exp_path, url, verbose):
    exp = json.load(open(exp_path))
    st = klaviyo_state.load(url)
    problems = klaviyo_state.list_problems(st, exp["lists"], only_expected=True)
    by_email = klaviyo_state.profiles_by_email(st)
    for acct, users in sorted(exp["profiles"].items()):
        for e, a in sorted(users.items()):
            p = by_email.get(e)
            if p is None:
                problems.append("%s has no profile" % e)
                continue
            got = {"first_name": p.get("first_name"),
                   "score": (p.get("properties") or {}).get("score")}
            if got != a:
                problems.append("%s: %s, want %s" % (e, got, a))
    return klaviyo_state.report(problems, verbose, 12)


def pace(path, seconds):
    lines = open(path).readlines()
    start = time.monotonic()
    step = seconds / max(len(lines), 1)
    for k, line in enumerate(lines):
        delay = start + k * step - time.monotonic()
        if delay > 0:
            sys.stdout.flush()
            time.sleep(delay)
        sys.stdout.write(line)
    sys.stdout.flush()


def main():
    cmd, verbose = sys.argv[1], "-v" in sys.argv
    if cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    if cmd == "check-redis":
        return 0 if check_redis(sys.argv[2], sys.argv[3], verbose) else 1
    if cmd == "check-klaviyo":
        return 0 if check_klaviyo(sys.argv[2], sys.argv[3], verbose) else 1
    if cmd == "pace":
        pace(sys.argv[2], float(sys.argv[3]))
        return 0
    print("unknown command", cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
