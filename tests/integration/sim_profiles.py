#!/usr/bin/env python3
"""sim_profiles.py URL EXPR [-v] -- exit 0 when the Python expression EXPR holds over the Klaviyo
simulator's state at URL. Helpers available to EXPR: s (the state), attr(email, key),
sub(email, channel="email") (the marketing consent: SUBSCRIBED / UNSUBSCRIBED / None),
members(list name) (sorted emails). -v prints the profiles the expression names on failure."""
import json
from datetime import datetime, timedelta  # noqa: F401 (for EXPR)
import re
import sys
import urllib.request

url, expr = sys.argv[1], sys.argv[2]
s = json.load(urllib.request.urlopen(url + "/_sim/state", timeout=10))
prof = {p["email"]: p for p in s["profiles"] if p.get("email")}
lists = {l["name"]: sorted(l["member_emails"]) for l in s["lists"]}


def attr(email, key):
    return (prof.get(email) or {}).get(key)


def sub(email, channel="email"):
    subs = (prof.get(email) or {}).get("subscriptions") or {}
    return ((subs.get(channel) or {}).get("marketing") or {}).get("consent")


def members(name):
    return lists.get(name) or []


ok = bool(eval(expr))
if not ok and "-v" in sys.argv:
    for email in sorted(set(re.findall(r"[\w.+-]+@[\w.-]+", expr))):
        print(email, json.dumps(prof.get(email), sort_keys=True)[:800], file=sys.stderr)
sys.exit(0 if ok else 1)
