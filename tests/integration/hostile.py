#!/usr/bin/env python3
"""hostile.py -- the hostile inputs of test_hostile.sh and their oracle.

  hostile.py gen RECORDS EXPECT     writes the records (key 0x1f value, 0x1e between records,
                                    for kcat -K/-D) and what each must become
  hostile.py check EXPECT DLQ REDIS_CLI...
                                    compares the dead-letter topic (kcat -J lines) and Redis
                                    (read with the redis-cli command line given) with EXPECT

The records, in order, on one partition (offset = index):
  * every file of tests/data/events/invalid: the bytes as they are; each must be dead-lettered
    once, stage decode, with the reason its name starts with;
  * every case of tests/data/mapping (those needing no AW_CONFIG_FILE or env), its account id
    made unique: each reject expected there becomes one dead letter (stage map, that reason),
    each change expected there must be pending in Redis (membership or profile stream);
  * crafted classes the fixtures do not cover (sizes, encodings, keys, names), each with its
    expected dead letter or pending change;
  * a sentinel, which must be pending: the worker went on after everything above.
"""
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ACCT0 = 7700000


def message(acct, mid, profiles, key="pk_hostile_key", ts=1714592744065):
    return {"type": "audience_membership_change_request", "id": mid, "timestamp_ms": ts,
            "account": {"account_id": acct, "account_settings": {"apiKey": key}},
            "user_profiles": profiles}


def profile(email, aud=1, action="add", attrs=None, name="Hostile", settings=None, enc="raw"):
    a = {"audience_id": aud, "audience_name": name, "action": action}
    if attrs is not None:
        a["user_attributes"] = attrs
    if settings is not None:
        a["audience_subscription_settings"] = settings
    return {"mpid": "1", "user_identities": [{"type": "email", "encoding": enc, "value": email}],
            "audiences": [a]}


def dump(m):
    return json.dumps(m, separators=(",", ":")).encode()


def crafted(acct):
    """(name, bytes, dead letters [(stage, reason)], pending [(acct, audience|None, email)])"""
    out = []

    def add(name, data, dl=(), pending=()):
        out.append((name, data, list(dl), list(pending)))

    def a():
        nonlocal acct
        acct += 1
        return acct

    n = a()
    add("10,000 profiles in one message",
        dump(message(n, "many", [profile("u%d@example.com" % i) for i in range(10000)])),
        pending=[(n, 1, "u0@example.com"), (n, 1, "u9999@example.com")])
    n = a()
    add("1,000 attributes on one profile (the most one change carries)",
        dump(message(n, "attrs", [profile("attrs@example.com", attrs=[
            {"key": "k%d" % i, "value": "v", "action": "upsert"} for i in range(1000)])])),
        pending=[(n, 1, "attrs@example.com"), (n, None, "attrs@example.com")])
    add("5,000 attributes on one profile",
        dump(message(a(), "attrs", [profile("attrs@example.com", attrs=[
            {"key": "k%d" % i, "value": "v", "action": "upsert"} for i in range(5000)])])),
        dl=[("map", "too_many_attributes")])
    n = a()
    add("an attribute value of 60 KB (under the 64 KB string limit)",
        dump(message(n, "big", [profile("big@example.com", attrs=[
            {"key": "blob", "value": "x" * 60000, "action": "upsert"}])])),
        pending=[(n, 1, "big@example.com")])
    add("an attribute value of 70 KB (over the string limit)",
        dump(message(a(), "huge", [profile("huge@example.com", attrs=[
            {"key": "blob", "value": "x" * 70000, "action": "upsert"}])])),
        dl=[("decode", "oversize")])
    add("nesting 40 deep", b'{"type":' + b'[' * 40 + b']' * 40 + b'}', dl=[("decode", "oversize")])
    add("a raw NUL byte inside a string",
        dump(message(a(), "nul", [profile("n@example.com")])).replace(b"n@example", b"n\x00@example"),
        dl=[("decode", "not_json")])
    add("an overlong UTF-8 encoding of '/'",
        dump(message(a(), "overlong", [profile("o@example.com")])).replace(b"o@example", b"o\xc0\xafx@example"),
        dl=[("decode", "not_json")])
    add("a lone continuation byte", dump(message(a(), "cont", [profile("c@example.com")])).replace(
        b"c@example", b"c\x80@example"), dl=[("decode", "not_json")])
    add("a UTF-16 surrogate escaped alone",
        dump(message(a(), "surr", [profile("s@example.com")])).replace(b"s@example", b"s\\ud800@example"),
        dl=[("decode", "not_json")])
    add("a number where the email belongs",
        dump(message(a(), "num", [profile("x")])).replace(b'"value":"x"', b'"value":12345'),
        dl=[("decode", "wrong_type")])
    add("a string where the audience id belongs",
        dump(message(a(), "audstr", [profile("s2@example.com")])).replace(b'"audience_id":1', b'"audience_id":"abc"'),
        dl=[("decode", "bad_value")])
    add("a 400-digit number", dump(message(a(), "bignum", [profile("b@example.com")])).replace(
        b'"timestamp_ms":1714592744065', b'"timestamp_ms":' + b"9" * 400), dl=[("decode", "not_json")])
    for label, key in (("CR/LF", "pk_a\r\nX-Injected: 1"), ("a space", "pk_a b"),
                       ("a tab", "pk_a\tb"), ("non-ASCII", "pk_\u00e9t\u00e9")):
        add("an API key with " + label,
            dump(message(a(), "key", [profile("k@example.com")], key=key)),
            dl=[("map", "invalid_account_settings")])
    add("an API key of spaces only", dump(message(a(), "blank", [profile("k@example.com")], key="   ")),
        dl=[("map", "missing_api_key")])
    for label, email in (("no @", "plain.example.com"), ("two @", "a@b@example.com"),
                         ("a 65-byte local part", "l" * 65 + "@example.com"),
                         ("255 bytes", "a@" + ("d" * 60 + ".") * 4 + "d" * 8 + ".com"),
                         ("a space inside", "sp ace@example.com"), ("no domain dot", "a@localhost"),
                         ("an empty local part", "@example.com"), ("a trailing dot", "a@example.com."),
                         ("a control character", "ctl\u0001@example.com")):
        add("an email with " + label, dump(message(a(), "em", [profile(email)])),
            dl=[("map", "invalid_email")])
    n = a()
    add("an email at the 254-byte limit",
        dump(message(n, "em254", [profile("a@" + ("d" * 62 + ".") * 3 + "d" * 59 + ".com")])),
        pending=[(n, 1, "a@" + ("d" * 62 + ".") * 3 + "d" * 59 + ".com")])
    n = a()
    add("an email in upper case with spaces around",
        dump(message(n, "emcase", [profile("  Mixed.Case@Example.COM ")])),
        pending=[(n, 1, "mixed.case@example.com")])
    add("a hashed email only", dump(message(a(), "hashed", [profile("9f" * 32, enc="sha256")])),
        dl=[("map", "hashed_email")])
    n = a()
    add("phone strings of every shape (dropped, the profile kept)",
        dump(message(n, "phones", [{
            "mpid": "1", "user_identities": [
                {"type": "email", "encoding": "raw", "value": "ph%d@example.com" % i},
                {"type": "mobile_number", "encoding": "raw", "value": v}],
            "audiences": [{"audience_id": 1, "audience_name": "Hostile", "action": "add"}]}
            for i, v in enumerate(["", "+", "++1", "abc", "1-800-FLOWERS", "+1 (415) 555-01",
                                   "\u0661\u0662\u0663", "+999999999999999999999", "0" * 300,
                                   "+14155550101;ext=1"])])),
        pending=[(n, 1, "ph%d@example.com" % i) for i in range(10)])
    add("a consentMapping that is not JSON",
        dump(message(a(), "cm", [profile("cm@example.com", settings={"consentMapping": "[{"})])),
        dl=[("map", "invalid_connection_settings")])
    add("a propertyMapping naming an unknown target",
        dump(message(a(), "pm", [profile("pm@example.com", settings={
            "propertyMapping": json.dumps([{"map": "a", "value": "$nope"}])})])),
        dl=[("map", "invalid_connection_settings")])
    n = a()
    add("an audience name of 1,000 characters",
        dump(message(n, "longname", [profile("ln@example.com", name="N" * 1000)])),
        pending=[(n, 1, "ln@example.com")])
    n = a()
    add("an audience name with quotes, backslashes and commas",
        dump(message(n, "quotes", [profile("q@example.com", name="a \"b\" 'c', d\\e")])),
        pending=[(n, 1, "q@example.com")])
    add("a JSON document that is only a string", b'"audience_membership_change_request"',
        dl=[("decode", "not_object")])
    return out


def gen(records_path, expect_path):
    recs, exp = [], []
    for f in sorted(glob.glob(os.path.join(ROOT, "tests/data/events/invalid/*"))):
        name = os.path.basename(f)
        data = open(f, "rb").read()
        if b"\x1e" in data or b"\x1f" in data:
            raise SystemExit("fixture %s holds a delimiter byte" % name)
        recs.append(data)
        exp.append({"name": "event fixture " + name, "dl": [["decode", name.split("__")[0]]],
                    "pending": []})
    acct = ACCT0
    for f in sorted(glob.glob(os.path.join(ROOT, "tests/data/mapping/*.json"))):
        d = json.load(open(f))
        if set(d) - {"description", "input", "expect"}:
            continue  # needs AW_CONFIG_FILE or env
        acct += 1
        m = d["input"]
        m["account"]["account_id"] = acct
        recs.append(dump(m))
        pend = []
        for c in d["expect"].get("changes", []):
            aud = None if c["action"] == "attribute_update" else int(c["audience_id"])
            pend.append([acct, aud, c["email"]])
        exp.append({"name": "mapping case " + os.path.basename(f),
                    "dl": [["map", r["reason"]] for r in d["expect"].get("rejects", [])],
                    "pending": pend})
    acct += 100
    for name, data, dl, pend in crafted(acct):
        recs.append(data)
        exp.append({"name": name, "dl": [list(x) for x in dl], "pending": [list(p) for p in pend]})
    recs.append(dump(message(ACCT0 - 1, "sentinel", [profile("sentinel@example.com")])))
    exp.append({"name": "the sentinel after everything", "dl": [],
                "pending": [[ACCT0 - 1, 1, "sentinel@example.com"]]})
    with open(records_path, "wb") as f:
        f.write(b"\x1e".join(b"k%d\x1f" % i + r for i, r in enumerate(recs)))
    json.dump(exp, open(expect_path, "w"))
    print(len(recs))


def check(expect_path, dlq_path, cli):
    exp = json.load(open(expect_path))
    got = {}
    for raw in open(dlq_path, "rb"):
        if not raw.strip():
            continue
        r = json.loads(raw.decode("utf-8", "replace"))
        h = r.get("headers") or []
        hd = {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}
        off = int(hd["aw.source.offset"])
        got.setdefault(off, []).append([hd["aw.stage"], hd["aw.reason"]])
    bad = 0

    def redis(*args):
        return subprocess.run(cli + list(args), capture_output=True, text=True,
                              check=True).stdout.strip()

    for off, e in enumerate(exp):
        want = sorted(e["dl"])
        have = sorted(got.pop(off, []))
        if want != have:
            bad += 1
            print("offset %d (%s): dead letters %s, expected %s" % (off, e["name"], have, want))
        for acct, aud, email in e["pending"]:
            key = "aw:{%d}:a:%d:p" % (acct, aud) if aud is not None else "aw:{%d}:p:p" % acct
            if redis("HEXISTS", key, email) != "1":
                bad += 1
                print("offset %d (%s): %s is not pending in %s" % (off, e["name"], email[:3] + "...", key))
    for off, dl in sorted(got.items()):
        bad += 1
        print("offset %d: unexpected dead letters %s" % (off, dl))
    classes = len(exp) - 1
    print("%d records (%d hostile classes), %d mismatches" % (len(exp), classes, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4:]))
    else:
        raise SystemExit(__doc__)
