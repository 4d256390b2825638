#!/usr/bin/env python3
"""Tests for the Klaviyo simulator (tests/klaviyo_sim/klaviyo_sim.py) over real HTTP.

Starts the simulator as a subprocess (its CLI: --port 0 --port-file) on 127.0.0.1 and talks to
it with urllib. Every test is bounded by an alarm; the file runs in well under a minute.
After each test the simulator's own responses must have validated against the spec's response
schemas (check_responses), so the worker's parsing is tested against Klaviyo's published shapes.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.environ.get("AW_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIM = os.path.join(ROOT, "tests", "klaviyo_sim", "klaviyo_sim.py")
KEY = "pk_test_key"
REV = "2026-07-15"
TEST_TIMEOUT_S = 20
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_proc = None
_port = None


def start_sim(extra_args=(), stdout=subprocess.PIPE):
    """Start a simulator; returns (Popen, port, startup seconds). stderr goes to ours."""
    tmpdir = tempfile.mkdtemp(prefix="ksim")
    port_file = os.path.join(tmpdir, "port")
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, SIM, "--port", "0", "--port-file", port_file] + list(extra_args),
                         stdout=stdout, text=True)
    while time.monotonic() - t0 < 10:
        if os.path.exists(port_file):
            with open(port_file) as f:
                txt = f.read()
            if txt.endswith("\n"):
                return p, int(txt), time.monotonic() - t0
        if p.poll() is not None:
            raise RuntimeError("simulator exited with %s" % p.returncode)
        time.sleep(0.02)
    p.kill()
    raise RuntimeError("simulator did not write its port file")


def setUpModule():
    global _proc, _port
    _proc, _port, _ = start_sim(stdout=subprocess.DEVNULL)


def tearDownModule():
    if _proc and _proc.poll() is None:
        _proc.send_signal(signal.SIGTERM)
        try:
            _proc.wait(5)
        except subprocess.TimeoutExpired:
            _proc.kill()
            _proc.wait()


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.raw = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None


def call(method, path, body=None, key=KEY, revision=REV, ctype="application/vnd.api+json",
         raw=None, headers=None, port=None, timeout=10):
    """One HTTP request; returns Resp for every status (never raises on 4xx/5xx)."""
    h = {}
    if key is not None:
        h["Authorization"] = "Klaviyo-API-Key " + key
    if revision is not None:
        h["revision"] = revision
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None and ctype:
        h["Content-Type"] = ctype
    h.update(headers or {})
    url = path if path.startswith("http") else "http://127.0.0.1:%d%s" % (port or _port, path)
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Resp(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Resp(e.code, e.headers, e.read())


def control(path, body=None):
    r = call("POST" if body is not None else "GET", "/_sim/" + path, body, key=None, revision=None,
             ctype="application/json")
    assert r.status == 200, (path, r.status, r.raw)
    return r.json


def state():
    return control("state")


def profile(email=None, **attrs):
    a = dict(attrs)
    if email is not None:
        a["email"] = email
    return {"type": "profile", "attributes": a}


def import_body(profiles, list_id=None):
    d = {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": profiles}}}
    if list_id:
        d["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
    return {"data": d}


def sub_body(profiles, historical=False, list_id=None, kind="profile-subscription-bulk-create-job"):
    d = {"type": kind, "attributes": {"profiles": {"data": profiles}}}
    if kind.endswith("create-job"):
        d["attributes"]["historical_import"] = historical
    if list_id:
        d["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return {"data": d}


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("test exceeded %d s" % TEST_TIMEOUT_S)


class SimTest(unittest.TestCase):
    def setUp(self):
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TEST_TIMEOUT_S)
        control("reset", {"config": True})
        control("config", {"job_queued_s": 0.1, "job_processing_s": 0.1, "check_responses": True,
                           "rate_limits": False})

    def tearDown(self):
        signal.alarm(0)
        try:
            viol = state()["response_violations"]
        finally:
            control("faults", {})
        self.assertEqual(viol, [], "simulator responses must match the spec's response schemas")

    # -- helpers -------------------------------------------------------------------------------
    def create_list(self, name):
        r = call("POST", "/api/lists", {"data": {"type": "list", "attributes": {"name": name}}})
        self.assertEqual(r.status, 201, r.raw)
        return r.json["data"]["id"]

    def wait_job(self, job_id, seen=None, limit=8.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            r = call("GET", "/api/profile-bulk-import-jobs/%s" % job_id)
            self.assertEqual(r.status, 200, r.raw)
            st = r.json["data"]["attributes"]["status"]
            if seen is not None and (not seen or seen[-1] != st):
                seen.append(st)
            if st in ("complete", "cancelled"):
                return r.json["data"]
            time.sleep(0.02)
        self.fail("job did not complete in time")

    def wait_jobs_done(self, limit=5.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if all(j["status"] == "complete" for j in state()["jobs"]):
                return
            time.sleep(0.05)
        self.fail("jobs did not complete")

    def assert_error(self, r, status, pointer=None, parameter=None, code=None):
        self.assertEqual(r.status, status, r.raw)
        self.assertIn("errors", r.json)
        e = r.json["errors"][0]
        for k in ("id", "status", "code", "title", "detail", "source"):
            self.assertIn(k, e)
        self.assertRegex(e["id"], UUID_RE)
        self.assertEqual(e["status"], status)
        if code:
            self.assertEqual(e["code"], code)
        if pointer is not None:
            self.assertEqual(e["source"].get("pointer"), pointer, r.json)
        if parameter is not None:
            self.assertEqual(e["source"].get("parameter"), parameter, r.json)
        return r.json["errors"]

    # -- tests ---------------------------------------------------------------------------------
    def test_cli_startup_and_sigterm(self):
        p, port, startup = start_sim()
        try:
            self.assertLess(startup, 5.0)
            r = call("GET", "/_sim/health", key=None, revision=None, port=port)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json["revision"], REV)
        finally:
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=5)
        self.assertEqual(p.returncode, 0)
        self.assertIn("listening on 127.0.0.1:%d" % port, out)

    def test_lists_create_get_filter_page(self):
        ids = [self.create_list("Audience %d" % i) for i in range(12)]
        r = call("GET", "/api/lists/%s" % ids[3])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["data"]["attributes"]["name"], "Audience 3")
        r = call("GET", "/api/lists?filter=" + urllib.request.quote('equals(name,"Audience 7")'))
        self.assertEqual([d["id"] for d in r.json["data"]], [ids[7]])
        r = call("GET", "/api/lists?filter=" + urllib.request.quote("equals(name,'nope')"))
        self.assertEqual(r.json["data"], [])
        r = call("GET", "/api/lists")
        self.assertEqual(len(r.json["data"]), 10)  # spec: max 10 per page
        r2 = call("GET", r.json["links"]["next"])
        self.assertEqual([d["id"] for d in r.json["data"] + r2.json["data"]], ids)
        self.assertNotIn("next", r2.json["links"])
        self.assert_error(call("GET", "/api/lists/doesnotexist"), 404, code="not_found")
        self.assert_error(call("GET", "/api/lists?page[size]=11"), 400, parameter="page[size]")
        self.assert_error(call("GET", "/api/lists?filter=" + urllib.request.quote('equals(email,"x")')),
                          400, parameter="filter")

    def test_bulk_import_lifecycle_and_import_errors(self):
        lid = self.create_list("Aud")
        profs = [profile("user%d@example.com" % i, first_name="U%d" % i,
                         location={"city": "Paris", "country": "FR"}, properties={"n": i})
                 for i in range(40)]
        profs[3]["attributes"]["email"] = "not-an-email"
        profs[7]["attributes"]["phone_number"] = "555-1234"
        profs[9]["attributes"]["phone_number"] = "+33612345678"
        control("config", {"job_queued_s": 0.25, "job_processing_s": 0.25})
        r = call("POST", "/api/profile-bulk-import-jobs", import_body(profs, lid))
        self.assertEqual(r.status, 202, r.raw)
        job = r.json["data"]
        self.assertEqual(job["attributes"]["status"], "queued")
        self.assertEqual(job["attributes"]["total_count"], 40)
        self.assertEqual(len(state()["profiles"]), 0, "the job must run asynchronously")
        seen = []
        done = self.wait_job(job["id"], seen)
        self.assertEqual(seen, ["queued", "processing", "complete"])
        a = done["attributes"]
        self.assertEqual((a["completed_count"], a["failed_count"]), (38, 2))
        self.assertIsNotNone(a["completed_at"])
        r = call("GET", "/api/profile-bulk-import-jobs/%s/import-errors" % job["id"])
        self.assertEqual(r.status, 200)
        ptrs = sorted(e["attributes"]["source"]["pointer"] for e in r.json["data"])
        self.assertEqual(ptrs, ["/data/attributes/profiles/data/3/attributes/email",
                                "/data/attributes/profiles/data/7/attributes/phone_number"])
        st = state()
        members = st["lists"][0]["member_emails"]
        self.assertEqual(len(members), 38)
        self.assertNotIn("not-an-email", members)
        p9 = [p for p in st["profiles"] if p["email"] == "user9@example.com"][0]
        self.assertEqual(p9["phone_number"], "+33612345678")
        self.assertEqual(p9["location"], {"city": "Paris", "country": "FR"})
        self.assertEqual(p9["properties"], {"n": 9})
        self.assertEqual(st["requests"]["bulk_import_profiles"], {"202": 1})
        r = call("GET", "/api/profile-bulk-import-jobs")
        self.assertEqual([j["id"] for j in r.json["data"]], [job["id"]])
        self.assert_error(call("GET", "/api/profile-bulk-import-jobs/nope"), 404)

    def test_upsert_by_email_and_property_unset(self):
        r = call("POST", "/api/profile-bulk-import-jobs", import_body(
            [profile("Keep@Example.com", first_name="A", title="T", properties={"a": 1, "b": 2})]))
        self.wait_job(r.json["data"]["id"])
        upd = profile("keep@example.com", first_name="B", properties={"c": 3})
        upd["meta"] = {"patch_properties": {"unset": ["a"]}}
        r = call("POST", "/api/profile-bulk-import-jobs", import_body([upd]))
        self.wait_job(r.json["data"]["id"])
        profs = state()["profiles"]
        self.assertEqual(len(profs), 1, "same email (case-insensitive) must update, not duplicate")
        p = profs[0]
        self.assertEqual((p["first_name"], p["title"]), ("B", "T"))
        self.assertEqual(p["properties"], {"b": 2, "c": 3})

    def test_bulk_import_ignores_nulls_profile_import_clears(self):
        # Klaviyo's bulk import guide: null does not clear a field; profile-import: null clears.
        full = profile("n@example.com", first_name="F", title="T", phone_number="+15005550006",
                       location={"city": "Paris", "zip": "75001"}, properties={"a": 1, "b": 2})
        self.wait_job(call("POST", "/api/profile-bulk-import-jobs", import_body([full])).json["data"]["id"])
        nulls = profile("n@example.com", first_name=None, title=None, phone_number=None,
                        location={"city": None, "zip": "75002"}, properties={"a": None, "c": 3})
        job = self.wait_job(call("POST", "/api/profile-bulk-import-jobs", import_body([nulls])).json["data"]["id"])
        self.assertEqual((job["attributes"]["completed_count"], job["attributes"]["failed_count"]), (1, 0))
        p = state()["profiles"][0]
        self.assertEqual((p["first_name"], p["title"], p["phone_number"]), ("F", "T", "+15005550006"),
                         "bulk import: null leaves the field unchanged")
        self.assertEqual(p["location"], {"city": "Paris", "zip": "75002"})
        self.assertEqual(p["properties"], {"a": 1, "b": 2, "c": 3})
        r = call("POST", "/api/profile-import", {"data": profile(
            "n@example.com", title=None, phone_number=None, location={"city": None}, properties={"b": None})})
        self.assertEqual(r.status, 200, r.raw)
        self.assertIsNone(r.json["data"]["attributes"]["title"])
        p = state()["profiles"][0]
        self.assertEqual((p["first_name"], p["title"], p["phone_number"]), ("F", None, None),
                         "profile-import: null clears, absent leaves unchanged")
        self.assertEqual(p["location"], {"zip": "75002"})
        self.assertEqual(p["properties"], {"a": 1, "c": 3})
        # The switch back to the old simulator behaviour (null clears in bulk imports as well).
        control("config", {"bulk_import_nulls": "clear"})
        self.wait_job(call("POST", "/api/profile-bulk-import-jobs",
                           import_body([profile("n@example.com", first_name=None)])).json["data"]["id"])
        self.assertIsNone(state()["profiles"][0]["first_name"])

    def test_profiles_filters_and_paging(self):
        r = call("POST", "/api/profile-bulk-import-jobs",
                 import_body([profile("p%d@example.com" % i, external_id="x%d" % i) for i in range(30)]))
        self.wait_job(r.json["data"]["id"])
        emails = ["p%d@example.com" % i for i in (1, 5, 29)] + ["unknown@example.com"]
        flt = "any(email,[%s])" % ",".join('"%s"' % e for e in emails)
        r = call("GET", "/api/profiles?filter=" + urllib.request.quote(flt))
        self.assertEqual(r.status, 200)
        self.assertEqual(sorted(d["attributes"]["email"] for d in r.json["data"]), sorted(emails[:3]))
        pid = r.json["data"][0]["id"]
        r = call("GET", "/api/profiles?filter=" + urllib.request.quote('equals(email,"P5@EXAMPLE.COM")'))
        self.assertEqual([d["attributes"]["email"] for d in r.json["data"]], ["p5@example.com"])
        r = call("GET", "/api/profiles?filter=" + urllib.request.quote('equals(id,"%s")' % pid))
        self.assertEqual([d["id"] for d in r.json["data"]], [pid])
        r = call("GET", "/api/profiles?filter=" + urllib.request.quote('equals(external_id,"x7")'))
        self.assertEqual([d["attributes"]["email"] for d in r.json["data"]], ["p7@example.com"])
        r = call("GET", "/api/profiles?page[size]=7")
        got = []
        while True:
            got += [d["id"] for d in r.json["data"]]
            if "next" not in r.json["links"]:
                break
            r = call("GET", r.json["links"]["next"])
        self.assertEqual(len(got), 30)
        self.assertEqual(len(set(got)), 30)
        many = "any(email,[%s])" % ",".join('"u%d@example.com"' % i for i in range(101))
        self.assert_error(call("GET", "/api/profiles?filter=" + urllib.request.quote(many)), 400, parameter="filter")
        self.assert_error(call("GET", "/api/profiles?filter=" + urllib.request.quote("any(email,")), 400,
                          parameter="filter")
        self.assert_error(call("GET", "/api/profiles?page[size]=101"), 400, parameter="page[size]")
        self.assert_error(call("GET", "/api/profiles?page[cursor]=garbage!"), 400, parameter="page[cursor]")

    def test_list_relationships(self):
        lid = self.create_list("Rel")
        r = call("POST", "/api/profile-bulk-import-jobs", import_body([profile("r%d@example.com" % i) for i in range(25)]))
        self.wait_job(r.json["data"]["id"])
        ids = [p["id"] for p in state()["profiles"]]
        r = call("POST", "/api/lists/%s/relationships/profiles" % lid, {"data": [{"type": "profile", "id": i} for i in ids]})
        self.assertEqual(r.status, 204, r.raw)
        r = call("GET", "/api/lists/%s/relationships/profiles?page[size]=20" % lid)
        self.assertEqual(len(r.json["data"]), 20)
        r2 = call("GET", r.json["links"]["next"])
        self.assertEqual([d["id"] for d in r.json["data"] + r2.json["data"]], ids)
        r = call("GET", "/api/lists/%s/profiles?filter=%s" % (lid, urllib.request.quote('equals(email,"r3@example.com")')))
        self.assertEqual([d["id"] for d in r.json["data"]], [ids[3]])
        # remove: unknown ids are ignored (204), members go away, profiles and consent stay
        r = call("DELETE", "/api/lists/%s/relationships/profiles" % lid,
                 {"data": [{"type": "profile", "id": i} for i in ids[:5] + ["01UNKNOWNUNKNOWNUNKNOWN000"]]})
        self.assertEqual(r.status, 204, r.raw)
        st = state()
        self.assertEqual(len(st["lists"][0]["members"]), 20)
        self.assertEqual(len(st["profiles"]), 25)
        r = call("POST", "/api/lists/%s/relationships/profiles" % lid, {"data": [{"type": "profile", "id": "nope"}]})
        self.assert_error(r, 400, pointer="/data/0/id")
        big = {"data": [{"type": "profile", "id": "id%d" % i} for i in range(1001)]}
        self.assert_error(call("DELETE", "/api/lists/%s/relationships/profiles" % lid, big), 400, pointer="/data")
        self.assert_error(call("DELETE", "/api/lists/nolist/relationships/profiles", {"data": []}), 404)

    def test_spec_breaking_requests_rejected(self):
        profs = [profile("ok%d@example.com" % i) for i in range(6)]
        profs[3]["attributes"]["email"] = 12345          # type: string in the spec
        errs = self.assert_error(call("POST", "/api/profile-bulk-import-jobs", import_body(profs)), 400,
                                 pointer="/data/attributes/profiles/data/3/attributes/email", code="invalid")
        self.assertEqual(errs[0]["title"], "Invalid input.")
        self.assertNotIn("12345", errs[0]["detail"], "values must not be echoed (personal data)")
        body = import_body([profile("a@example.com")])
        del body["data"]["type"]
        self.assert_error(call("POST", "/api/profile-bulk-import-jobs", body), 400, pointer="/data/type")
        body = import_body([profile("a@example.com")])
        body["data"]["type"] = "profile-import-job"
        self.assert_error(call("POST", "/api/profile-bulk-import-jobs", body), 400, pointer="/data/type")
        body = import_body([profile("a@example.com"), {"type": "profile"}])
        self.assert_error(call("POST", "/api/profile-bulk-import-jobs", body), 400,
                          pointer="/data/attributes/profiles/data/1/attributes")
        self.assert_error(call("POST", "/api/lists", {"data": {"type": "list", "attributes": {}}}), 400,
                          pointer="/data/attributes/name")
        self.assert_error(call("POST", "/api/lists/x/relationships/profiles", {"data": [{"id": "abc"}]}), 400,
                          pointer="/data/0/type")
        self.assert_error(call("POST", "/api/lists", raw=b"{not json"), 400)
        self.assert_error(call("POST", "/api/lists"), 400)
        st = state()
        self.assertEqual((st["lists"], st["jobs"]), ([], []), "rejected requests must not change state")

    def test_auth_revision_content_type(self):
        self.assert_error(call("GET", "/api/lists", key=None), 401, code="not_authenticated")
        self.assert_error(call("GET", "/api/lists", key=None, headers={"Authorization": "Bearer pk_x"}), 401)
        self.assert_error(call("GET", "/api/lists", key=""), 401)
        control("config", {"api_keys": ["pk_good"]})
        self.assert_error(call("GET", "/api/lists", key="pk_other"), 401)
        self.assertEqual(call("GET", "/api/lists", key="pk_good").status, 200)
        control("config", {"api_keys": None})
        self.assert_error(call("GET", "/api/lists", revision=None), 400, parameter="revision")
        self.assert_error(call("GET", "/api/lists", revision="2019-01-01"), 400, parameter="revision")
        self.assert_error(call("GET", "/api/lists", revision="latest"), 400, parameter="revision")
        body = {"data": {"type": "list", "attributes": {"name": "L"}}}
        self.assert_error(call("POST", "/api/lists", body, ctype="text/plain"), 415)
        self.assertEqual(call("POST", "/api/lists", body, ctype="application/json").status, 201)
        control("config", {"strict_content_type": True})
        self.assert_error(call("POST", "/api/lists", body, ctype="application/json"), 415)
        self.assertEqual(call("POST", "/api/lists", body, ctype="application/vnd.api+json; charset=utf-8").status, 201)
        self.assert_error(call("GET", "/api/nothing-here"), 404)
        self.assert_error(call("PUT", "/api/lists", body), 405)
        self.assert_error(call("GET", "/api/accounts"), 501)

    def test_rate_limits(self):
        control("config", {"rate_limits": True})
        r = call("POST", "/api/lists", {"data": {"type": "list", "attributes": {"name": "L"}}})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.headers["RateLimit-Limit"], "150")      # create_list steady 150/m in the spec
        self.assertEqual(r.headers["RateLimit-Remaining"], "149")
        self.assertTrue(0 <= int(r.headers["RateLimit-Reset"]) <= 60)
        r = call("GET", "/api/lists")
        self.assertEqual(r.headers["RateLimit-Limit"], "750")      # get_lists steady 750/m
        # burst: 2 per 1 s window -> 6 quick calls span at most 2 windows -> at least 2 are 429
        control("config", {"rate_limit_overrides": {"get_lists": {"burst": 2}}})
        res = [call("GET", "/api/lists") for _ in range(6)]
        limited = [r for r in res if r.status == 429]
        self.assertGreaterEqual(len(limited), 2)
        self.assertLessEqual(len(res) - len(limited), 4)
        e = self.assert_error(limited[0], 429, code="throttled")
        self.assertGreaterEqual(int(limited[0].headers["Retry-After"]), 1)
        self.assertIsNone(limited[0].headers.get("RateLimit-Remaining"))
        self.assertTrue(e[0]["detail"])
        # per account: another key has its own budget
        self.assertEqual(call("GET", "/api/lists", key="pk_other_account").status, 200)
        # daily limit of create_list (150/d in the spec), overridden to 2 for the test
        control("config", {"rate_limit_overrides": {"create_list": {"daily": 2}}})
        codes = [call("POST", "/api/lists", {"data": {"type": "list", "attributes": {"name": "D"}}}).status
                 for _ in range(3)]
        self.assertEqual(codes, [201, 429, 429])  # one create already spent at the top
        r = call("POST", "/api/lists", {"data": {"type": "list", "attributes": {"name": "D"}}})
        self.assertGreater(int(r.headers["Retry-After"]), 60)
        st = state()
        self.assertGreaterEqual(st["throttled"]["get_lists"], 2)
        self.assertEqual(st["requests"]["create_list"]["429"], 3)

    def test_rate_limit_time_scale(self):
        control("config", {"rate_limits": True, "time_scale": 0.05, "rate_limit_overrides": {"get_lists": {"steady": 3}}})
        codes = [call("GET", "/api/lists").status for _ in range(4)]
        self.assertIn(429, codes)
        time.sleep(3.1)  # the steady window is 60 s x 0.05
        self.assertEqual(call("GET", "/api/lists").status, 200)

    def test_payload_limits(self):
        many = [profile("m%d@example.com" % i) for i in range(10001)]
        self.assert_error(call("POST", "/api/profile-bulk-import-jobs", import_body(many)), 400,
                          pointer="/data/attributes/profiles/data")
        fat = [profile("f%d@example.com" % i, properties={"blob": "x" * 2000}) for i in range(2700)]
        self.assert_error(call("POST", "/api/profile-bulk-import-jobs", import_body(fat)), 413)
        ok = [profile("m%d@example.com" % i) for i in range(10000)]
        r = call("POST", "/api/profile-bulk-import-jobs", import_body(ok))
        self.assertEqual(r.status, 202, r.raw[:300])
        subs = [profile("s%d@example.com" % i, subscriptions={"email": {"marketing": {"consent": "SUBSCRIBED"}}})
                for i in range(1001)]
        self.assert_error(call("POST", "/api/profile-subscription-bulk-create-jobs", sub_body(subs)), 400,
                          pointer="/data/attributes/profiles/data")
        self.assertEqual(call("POST", "/api/profile-subscription-bulk-create-jobs", sub_body(subs[:1000])).status, 202)
        uns = [profile("s%d@example.com" % i, subscriptions={"email": {"marketing": {"consent": "UNSUBSCRIBED"}}})
               for i in range(101)]
        kind = "profile-subscription-bulk-delete-job"
        self.assert_error(call("POST", "/api/profile-subscription-bulk-delete-jobs", sub_body(uns, kind=kind)), 400,
                          pointer="/data/attributes/profiles/data")
        self.assertEqual(call("POST", "/api/profile-subscription-bulk-delete-jobs",
                              sub_body(uns[:100], kind=kind)).status, 202)

    def test_subscriptions_consent(self):
        lid = self.create_list("Consent")
        past = "2024-05-01T10:00:00+00:00"
        good = profile("c1@example.com", phone_number="+15005550006", subscriptions={
            "email": {"marketing": {"consent": "SUBSCRIBED", "consented_at": past}},
            "sms": {"marketing": {"consent": "SUBSCRIBED", "consented_at": past}}})
        r = call("POST", "/api/profile-subscription-bulk-create-jobs", sub_body([good], True, lid))
        self.assertEqual(r.status, 202, r.raw)
        self.assertEqual(r.raw, b"")
        self.wait_jobs_done()
        st = state()
        p = st["profiles"][0]
        mk = p["subscriptions"]["email"]["marketing"]
        self.assertEqual((mk["consent"], mk["consented_at"], mk["historical_import"]), ("SUBSCRIBED", past, True))
        self.assertEqual(p["subscriptions"]["sms"]["marketing"]["consent"], "SUBSCRIBED")
        self.assertEqual(st["lists"][0]["member_emails"], ["c1@example.com"])
        r = call("GET", "/api/profiles?additional-fields[profile]=subscriptions")
        self.assertEqual(r.json["data"][0]["attributes"]["subscriptions"]["email"]["marketing"]["consent"], "SUBSCRIBED")
        # historical import without consented_at, consented_at without historical, future date
        bad = profile("c2@example.com", subscriptions={"email": {"marketing": {"consent": "SUBSCRIBED"}}})
        ptr = "/data/attributes/profiles/data/1/attributes/subscriptions/email/marketing/consented_at"
        self.assert_error(call("POST", "/api/profile-subscription-bulk-create-jobs", sub_body([good, bad], True)), 400,
                          pointer=ptr)
        self.assert_error(call("POST", "/api/profile-subscription-bulk-create-jobs", sub_body([good], False)), 400,
                          pointer=ptr.replace("/1/", "/0/"))
        fut = profile("c3@example.com", subscriptions={"email": {"marketing": {"consent": "SUBSCRIBED",
                                                                               "consented_at": "2999-01-01T00:00:00Z"}}})
        self.assert_error(call("POST", "/api/profile-subscription-bulk-create-jobs", sub_body([fut], True)), 400,
                          pointer=ptr.replace("/1/", "/0/"))
        nosms = profile("c4@example.com", subscriptions={"sms": {"marketing": {"consent": "SUBSCRIBED"}}})
        self.assert_error(call("POST", "/api/profile-subscription-bulk-create-jobs", sub_body([nosms])), 400,
                          pointer="/data/attributes/profiles/data/0/attributes/phone_number")
        wrong = profile("c5@example.com", subscriptions={"email": {"marketing": {"consent": "UNSUBSCRIBED"}}})
        self.assert_error(call("POST", "/api/profile-subscription-bulk-create-jobs", sub_body([wrong])), 400,
                          pointer="/data/attributes/profiles/data/0/attributes/subscriptions/email/marketing/consent")
        # unsubscribe without a list: consent revoked, list membership untouched
        un = profile("c1@example.com", subscriptions={"email": {"marketing": {"consent": "UNSUBSCRIBED"}}})
        r = call("POST", "/api/profile-subscription-bulk-delete-jobs",
                 sub_body([un], kind="profile-subscription-bulk-delete-job"))
        self.assertEqual(r.status, 202, r.raw)
        self.wait_jobs_done()
        st = state()
        p = st["profiles"][0]
        self.assertEqual(p["subscriptions"]["email"]["marketing"]["consent"], "UNSUBSCRIBED")
        self.assertEqual(p["subscriptions"]["sms"]["marketing"]["consent"], "SUBSCRIBED")
        self.assertEqual(st["lists"][0]["member_emails"], ["c1@example.com"])

    def test_single_profile_import(self):
        r = call("POST", "/api/profile-import", {"data": profile("one@example.com", first_name="O")})
        self.assertEqual(r.status, 201, r.raw)
        pid = r.json["data"]["id"]
        r = call("POST", "/api/profile-import", {"data": profile("ONE@example.com", last_name="L")})
        self.assertEqual((r.status, r.json["data"]["id"]), (200, pid))
        self.assertEqual(r.json["data"]["attributes"]["first_name"], "O")
        call("POST", "/api/profile-import", {"data": profile("two@example.com", phone_number="+15005550007")})
        r = call("POST", "/api/profile-import", {"data": profile("one@example.com", phone_number="+15005550007")})
        self.assert_error(r, 409, pointer="/data/attributes/phone_number")
        self.assert_error(call("POST", "/api/profile-import", {"data": profile("bad@")}), 400,
                          pointer="/data/attributes/email")

    def test_faults(self):
        body = {"data": {"type": "list", "attributes": {"name": "F"}}}
        control("faults", {"error_rate_5xx": 1.0, "status": 503})
        self.assert_error(call("POST", "/api/lists", body), 503)
        self.assertEqual(state()["lists"], [], "a 5xx before apply changes nothing")
        control("faults", {"error_rate_5xx": 1.0, "status": 500, "error_after_apply": True})
        self.assert_error(call("POST", "/api/lists", body), 500)
        self.assertEqual(len(state()["lists"]), 1, "error_after_apply: state changed, client saw 500")
        control("config", {"seed": 7})
        control("faults", {"error_rate_5xx": 0.3})
        codes = [call("GET", "/api/lists").status for _ in range(40)]
        self.assertTrue(0 < codes.count(503) < 40, codes)
        self.assertEqual(set(codes), {200, 503})
        control("faults", {"storm_429": {"count": 2, "retry_after": 3}})
        res = [call("GET", "/api/lists") for _ in range(3)]
        self.assertEqual([r.status for r in res], [429, 429, 200])
        self.assertEqual(res[0].headers["Retry-After"], "3")
        control("faults", {"slow_ms": 300})
        t0 = time.monotonic()
        self.assertEqual(call("GET", "/api/lists").status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        control("faults", {"drop_connections": 1})
        with self.assertRaises((http.client.HTTPException, urllib.error.URLError, ConnectionError)):
            call("GET", "/api/lists")
        self.assertEqual(call("GET", "/api/lists").status, 200)
        control("faults", {"unauthorized_keys": ["pk_revoked"]})
        self.assert_error(call("GET", "/api/lists", key="pk_revoked"), 401)
        self.assertEqual(call("GET", "/api/lists").status, 200)
        control("faults", {"error_rate_5xx": 1.0, "paths": "^/api/profiles"})
        self.assertEqual(call("GET", "/api/lists").status, 200)
        self.assert_error(call("GET", "/api/profiles"), 503)
        st = state()
        self.assertEqual(st["faults_injected"]["drop_connections"], 1)
        self.assertEqual(st["faults_injected"]["storm_429"], 2)
        self.assertGreaterEqual(st["throttled"]["get_lists"], 2)
        r = call("POST", "/_sim/faults", {"bogus": 1}, key=None, revision=None, ctype="application/json")
        self.assertEqual(r.status, 400)

    def test_retry_after_violations(self):
        """A request sent on the same key and operation after a 429 arrived, before its
        Retry-After elapsed, is recorded (the soak requires none); one sent after it, or on
        another key, is not."""
        control("faults", {"storm_429": {"count": 1, "retry_after": 1}})
        self.assertEqual(call("GET", "/api/lists").status, 429)
        self.assertEqual(call("GET", "/api/lists", key="pk_other_key").status, 200)
        time.sleep(0.1)  # past the in-flight slack: the client had the 429 in hand
        self.assertEqual(call("GET", "/api/lists").status, 200)  # too early
        v = state()["retry_after_violations"]
        self.assertEqual(len(v), 1, v)
        self.assertEqual(v[0]["op"], "get_lists")
        self.assertGreater(v[0]["early_s"], 0.5)
        time.sleep(1.0)
        self.assertEqual(call("GET", "/api/lists").status, 200)
        self.assertEqual(len(state()["retry_after_violations"]), 1)

    def test_reject_containing(self):
        """A request holding a poisoned value (in its URL or body) is refused whole: 400 with
        no record pointer; the same request without it passes."""
        control("faults", {"reject_containing": ["poison@example.com"]})
        q = "/api/profiles?filter=" + urllib.parse.quote('any(email,["a@example.com","poison@example.com"])')
        r = call("GET", q)
        self.assert_error(r, 400)
        errs = r.json["errors"]
        self.assertFalse(any((e.get("source") or {}).get("pointer") for e in errs), errs)
        ok = "/api/profiles?filter=" + urllib.parse.quote('any(email,["a@example.com"])')
        self.assertEqual(call("GET", ok).status, 200)
        body = {"data": {"type": "list", "attributes": {"name": "poison@example.com"}}}
        self.assert_error(call("POST", "/api/lists", body), 400)
        self.assertEqual(state()["faults_injected"]["reject_whole"], 2)

    def test_jobs_finish_late_and_out_of_order(self):
        def run(n):
            ids = [call("POST", "/api/profile-bulk-import-jobs",
                        import_body([profile("j%d@example.com" % i)])).json["data"]["id"] for i in range(n)]
            t0 = time.monotonic()
            self.wait_jobs_done(limit=10)
            took = time.monotonic() - t0
            seq = {j["id"]: j["applied_seq"] for j in state()["jobs"]}
            return [seq[i] for i in ids], took
        order, _ = run(5)
        self.assertEqual(order, sorted(order), "without jitter jobs finish in submission order")
        control("reset", {})
        control("config", {"job_jitter_s": 1.5, "seed": 3})
        order, took = run(8)
        self.assertNotEqual(order, sorted(order), "with jitter a later job finishes first")
        self.assertGreater(took, 0.2 + 0.3, "jitter makes jobs late")
        self.assertEqual(len(state()["profiles"]), 8, "every job is applied exactly once")

    def test_slow_jobs_and_listing_unfinished(self):
        control("faults", {"slow_jobs": {"count": 1, "extra_s": 6}})
        slow = call("POST", "/api/profile-bulk-import-jobs",
                    import_body([profile("slow@example.com")])).json["data"]["id"]
        fast = call("POST", "/api/profile-bulk-import-jobs",
                    import_body([profile("fast@example.com")])).json["data"]["id"]
        unfinished = "/api/profile-bulk-import-jobs?filter=" + urllib.parse.quote(
            'any(status,["queued","processing"])')
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ids = [j["id"] for j in call("GET", unfinished).json["data"]]
            if fast not in ids:
                break
            time.sleep(0.05)
        self.assertEqual(ids, [slow], "only the slowed job is still unfinished")
        self.wait_jobs_done(limit=10)
        self.assertEqual(call("GET", unfinished).json["data"], [])
        self.assertEqual(state()["faults_injected"]["slow_jobs"], 1, "only the next N jobs")
        # newest first (sort=-created_at), the order the worker polls its jobs in
        newest = [j["id"] for j in call("GET", "/api/profile-bulk-import-jobs?sort=-created_at").json["data"]]
        oldest = [j["id"] for j in call("GET", "/api/profile-bulk-import-jobs?sort=created_at").json["data"]]
        self.assertEqual(newest[:2], [fast, slow])
        self.assertEqual(oldest, newest[::-1])
        self.assertEqual(call("GET", "/api/profile-bulk-import-jobs?sort=status").status, 400)
        self.assertEqual(call("POST", "/_sim/faults", {"slow_jobs": {"count": "x"}}, key=None,
                              revision=None, ctype="application/json").status, 400)

    def test_drop_after_apply(self):
        body = {"data": {"type": "list", "attributes": {"name": "Lost answer"}}}
        control("faults", {"drop_after_apply": {"count": 1, "ops": ["create_list"]}})
        self.assertEqual(call("GET", "/api/lists").status, 200, "other operations are not dropped")
        with self.assertRaises((http.client.HTTPException, urllib.error.URLError, ConnectionError)):
            call("POST", "/api/lists", body)
        st = state()
        self.assertEqual([l["name"] for l in st["lists"]], ["Lost answer"], "applied although the answer was lost")
        self.assertEqual(st["requests"]["create_list"], {"201-dropped": 1})
        self.assertEqual(st["faults_injected"]["drop_after_apply"], 1)
        self.assertEqual(call("POST", "/api/lists", body).status, 201, "only the next N requests")
        # by probability, on every operation: a bulk import job is created, its answer lost
        control("faults", {"drop_after_apply": {"rate": 1.0}})
        with self.assertRaises((http.client.HTTPException, urllib.error.URLError, ConnectionError)):
            call("POST", "/api/profile-bulk-import-jobs", import_body([profile("d@example.com")]))
        with self.assertRaises((http.client.HTTPException, urllib.error.URLError, ConnectionError)):
            call("GET", "/api/profiles")
        # a refused request is not applied, so its answer is not dropped
        self.assert_error(call("POST", "/api/lists", {"data": {"type": "list", "attributes": {}}}), 400)
        control("faults", {})
        self.wait_jobs_done()
        self.assertEqual([p["email"] for p in state()["profiles"]], ["d@example.com"])
        r = call("POST", "/_sim/faults", {"drop_after_apply": {"bogus": 1}}, key=None, revision=None,
                 ctype="application/json")
        self.assertEqual(r.status, 400)

    def test_counts(self):
        """/_sim/counts: requests, lists, members, profiles, consent per channel and (asked for)
        the values of one custom property, without the whole state."""
        lid = call("POST", "/api/lists", {"data": {"type": "list", "attributes": {"name": "C"}}}).json["data"]["id"]
        call("POST", "/api/profile-bulk-import-jobs", import_body([
            profile("c1@example.com", properties={"wave": 2}),
            profile("c2@example.com", properties={"wave": 1}),
            profile("c3@example.com", properties={"wave": 2})], lid))
        sub = profile("c1@example.com", subscriptions={"email": {"marketing": {"consent": "SUBSCRIBED"}}})
        self.assertEqual(call("POST", "/api/profile-subscription-bulk-create-jobs", sub_body([sub])).status, 202)
        self.wait_jobs_done()
        c = control("counts")
        self.assertEqual((c["lists"], c["members"], c["profiles"]), (1, 3, 3))
        self.assertEqual(c["requests"]["create_list"], {"201": 1})
        self.assertEqual(c["consent"], {"email": {"SUBSCRIBED": 1}})
        self.assertNotIn("property", c)
        c = control("counts?property=wave")
        self.assertEqual(c["property"], {"wave": {"2": 2, "1": 1}})
        self.assertEqual(c["member_property"], {"wave": {"2": 2, "1": 1}})
        call("POST", "/api/profile-bulk-import-jobs", import_body([profile("c4@example.com")], lid))
        self.wait_jobs_done()
        self.assertEqual(control("counts?property=wave")["member_property"], {"wave": {"2": 2, "1": 1, "": 1}})

    def test_latency(self):
        """latency_ms: every API answer waits lo..hi ms; the control endpoints do not. Requests
        handled at once are counted (max_in_flight)."""
        control("config", {"latency_ms": [150, 200]})
        threads = [threading.Thread(target=call, args=("GET", "/api/lists")) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(control("counts")["max_in_flight"], {"*": 3, "get_lists": 3})
        t0 = time.monotonic()
        self.assertEqual(call("GET", "/api/lists").status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.15)
        self.assert_error(call("GET", "/api/lists/nope"), 404)
        self.assertGreaterEqual(time.monotonic() - t0, 0.30, "errors wait too")
        for bad in ([200, 100], [5], "fast", [0, 70000]):
            r = call("POST", "/_sim/config", {"latency_ms": bad}, key=None, revision=None,
                     ctype="application/json")
            self.assertEqual(r.status, 400, bad)
        control("config", {"latency_ms": [0, 0]})

    def test_long_url_414(self):
        def lookup(n):
            emails = ",".join('"u%05d@example.com"' % i for i in range(n))
            return call("GET", "/api/profiles?filter=" + urllib.request.quote("any(email,[%s])" % emails))
        short = lookup(100)                        # ~4.5 KB: allowed
        self.assertEqual(short.status, 200, short.raw[:200])
        r = call("GET", "/api/lists?filter=" + "x" * 8192)
        self.assert_error(r, 414)
        self.assertIsNone(r.headers.get("RateLimit-Remaining"), "refused before rate limiting")
        self.assertEqual(state()["requests"]["get_lists"], {"414": 1})

    def test_rate_limit_headers_on_every_answer(self):
        control("config", {"rate_limits": True})
        answers = [call("GET", "/api/lists"),                                      # 200
                   call("GET", "/api/lists/nope"),                                  # 404
                   call("GET", "/api/lists", revision="2019-01-01"),                # 400
                   call("POST", "/api/lists", {"data": {"type": "list", "attributes": {}}})]  # 400
        control("faults", {"error_rate_5xx": 1.0})
        answers.append(call("GET", "/api/profiles"))                                # 503
        control("faults", {})
        self.assertEqual([r.status for r in answers], [200, 404, 400, 400, 503])
        for r in answers:
            for h in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
                self.assertRegex(r.headers.get(h) or "", r"^[0-9]+$", (r.status, h))
        # each operation has its own window: get_lists 750/m, get_list 750/m, create_list 150/m
        self.assertEqual([r.headers["RateLimit-Limit"] for r in answers], ["750", "750", "750", "150", "750"])
        self.assertEqual(answers[2].headers["RateLimit-Remaining"], "748", "get_lists: 2 spent")
        self.assertEqual(answers[3].headers["RateLimit-Remaining"], "149")
        # 429: Retry-After (integer seconds), no RateLimit-* (as Klaviyo documents)
        control("config", {"rate_limit_overrides": {"get_profiles": {"burst": 1}}})
        r = call("GET", "/api/profiles")
        self.assertEqual(r.status, 429, "the 503 above spent the one request of this second")
        self.assertRegex(r.headers["Retry-After"], r"^[1-9][0-9]*$")
        self.assertIsNone(r.headers.get("RateLimit-Limit"))
        self.assertEqual(call("GET", "/api/lists").status, 200, "another operation has its own quota")

    def test_rate_limits_per_account(self):
        control("config", {"rate_limits": True, "rate_limit_overrides": {"get_lists": {"burst": 10, "steady": 4}},
                           "accounts": {"pk_a1": "A", "pk_a2": "A"}})
        codes = [call("GET", "/api/lists", key=k).status for k in ("pk_a1", "pk_a2", "pk_a1", "pk_a2", "pk_a1",
                                                                   "pk_a2", "pk_a1", "pk_a2")]
        self.assertEqual(codes, [200] * 4 + [429] * 4, "two keys of one account share its steady quota")
        self.assertEqual(call("GET", "/api/lists", key="pk_b").status, 200, "another account has its own")

    def test_other_integration_spends_the_quota(self):
        control("config", {"rate_limits": True, "other_usage": {KEY: {"get_lists": 20}}})
        t0 = time.monotonic()
        r1 = call("GET", "/api/lists")
        time.sleep(0.5)
        r2 = call("GET", "/api/lists")
        bound = 1 + 20 * (time.monotonic() - t0) + 1
        spent = int(r1.headers["RateLimit-Remaining"]) - int(r2.headers["RateLimit-Remaining"])
        self.assertTrue(1 + 9 <= spent <= bound, "our 1 request + 20/s of the other integration: %d" % spent)
        r = call("GET", "/api/profiles")
        self.assertEqual(r.headers["RateLimit-Remaining"], "749", "only the configured operation")
        self.assertEqual(call("GET", "/api/lists", key="pk_other").headers["RateLimit-Remaining"], "749")
        # enough other usage exhausts the window: 429 although we sent few requests ourselves
        control("config", {"other_usage": {"*": {"*": 200}},
                           "rate_limit_overrides": {"get_profiles": {"steady": 100}}})
        time.sleep(0.6)
        r = call("GET", "/api/profiles")
        self.assert_error(r, 429, code="throttled")
        self.assertGreaterEqual(int(r.headers["Retry-After"]), 1)

    def test_default_spec_is_vendored(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AW_")}
        tmp = tempfile.mkdtemp(prefix="ksim")
        pf = os.path.join(tmp, "port")
        p = subprocess.Popen([sys.executable, SIM, "--port", "0", "--port-file", pf], cwd=tmp, env=env,
                             stdout=subprocess.DEVNULL)
        try:
            t0 = time.monotonic()
            while not os.path.exists(pf) and p.poll() is None and time.monotonic() - t0 < 10:
                time.sleep(0.02)
            self.assertIsNone(p.poll(), "the simulator needs no environment and nothing outside the repository")
            with open(pf) as f:
                port = int(f.read())
            self.assertEqual(call("GET", "/_sim/health", key=None, revision=None, port=port).json["revision"], REV)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(5)

    def test_keep_alive_and_state_dump(self):
        conn = http.client.HTTPConnection("127.0.0.1", _port, timeout=5)
        hdr = {"Authorization": "Klaviyo-API-Key " + KEY, "revision": REV}
        conn.request("GET", "/api/lists", headers=hdr)
        r1 = conn.getresponse()
        r1.read()
        sock = conn.sock
        conn.request("GET", "/api/profiles", headers=hdr)
        r2 = conn.getresponse()
        r2.read()
        self.assertEqual((r1.status, r2.status), (200, 200))
        self.assertIs(conn.sock, sock, "HTTP/1.1 keep-alive: one connection for both requests")
        conn.close()
        st = state()
        for k in ("config", "faults", "lists", "profiles", "jobs", "requests", "throttled", "recent_requests"):
            self.assertIn(k, st)
        self.assertEqual(st["requests"]["get_lists"], {"200": 1})
        self.assertEqual(st["requests"]["get_profiles"], {"200": 1})
        self.assertNotIn(KEY, json.dumps(st), "no API keys in the dump")


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    res = prog.result
    print("test_klaviyo_sim: %d run, %d failures, %d errors, %d skipped"
          % (res.testsRun, len(res.failures), len(res.errors), len(res.skipped)))
    sys.exit(0 if res.wasSuccessful() else 1)
