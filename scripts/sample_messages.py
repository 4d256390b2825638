#!/usr/bin/env python3
"""sample_messages.py -- a small, realistic mParticle audience stream for the local run.

  sample_messages.py OUT.tsv EXPECTED.json

Writes key<TAB>message lines (one Kafka record each) and the Klaviyo state they imply:
two audiences of account 2001 ("Newsletter subscribers": users 10..149 after 10 removals,
"High value": users 0..59), names and phones on some users, email-marketing consent on a few.
"""
import json
import sys

ACCOUNT = 2001
API_KEY = "pk_local_demo_key"
T0 = 1764288000000  # 2025-11-28T00:00:00Z
AUDIENCES = {101: "Newsletter subscribers", 102: "High value"}
CONSENT_MAPPING = json.dumps([{"map": "marketing", "value": "email_marketing"}])


def email(i):
    return "person%03d@example.org" % i


def account():
    return {"account_id": ACCOUNT, "account_settings": {"apiKey": API_KEY}}


def aud(aid, action, attrs=None):
    a = {"audience_id": aid, "audience_name": AUDIENCES[aid], "action": action,
         "audience_subscription_settings": {"consentMapping": CONSENT_MAPPING}}
    if attrs:
        a["user_attributes"] = [{"key": k, "value": v, "action": "upsert"} for k, v in attrs]
    return a


def profile(i, audiences, with_consent=False):
    ids = [{"type": "email", "encoding": "raw", "value": email(i)}]
    if i % 3 == 0:
        ids.append({"type": "mobile_number", "encoding": "raw", "value": "020 7946 %04d" % i})
    p = {"mpid": str(900000 + i), "user_identities": ids, "audiences": audiences}
    if with_consent:
        p["consent_state"] = {"gdpr": {"marketing": {
            "consented": True, "timestamp_unixtime_ms": T0 - 86400000, "document": "v1",
            "location": "signup", "hardware_id": "hw"}}}
    return p


def main():
    out, expected = sys.argv[1], sys.argv[2]
    lines = []
    n = 0
    for aid, name in AUDIENCES.items():
        lines.append(("aud-%d" % aid, {
            "type": "audience_subscription_request", "id": "sub-%d" % aid,
            "timestamp_ms": T0, "firehose_version": "3.2.0", "account": account(),
            "audience_id": aid, "audience_name": name, "action": "add",
            "audience_subscription_settings": {"consentMapping": CONSENT_MAPPING}}))
    for i in range(150):
        attrs = [("$FirstName", "Person"), ("$LastName", "Number %d" % i), ("$Country", "GB"),
                 ("favourite_colour", ["red", "green", "blue"][i % 3])]
        audiences = [aud(101, "add", attrs)]
        if i < 60:
            audiences.append(aud(102, "add", attrs))
        n += 1
        lines.append((email(i), {
            "type": "audience_membership_change_request", "id": "msg-%04d" % n,
            "timestamp_ms": T0 + 1000 + i, "firehose_version": "3.2.0", "account": account(),
            "user_profiles": [profile(i, audiences, with_consent=(i % 25 == 0))]}))
    for i in range(10):  # later removals from the newsletter
        n += 1
        lines.append((email(i), {
            "type": "audience_membership_change_request", "id": "msg-%04d" % n,
            "timestamp_ms": T0 + 5000 + i, "firehose_version": "3.2.0", "account": account(),
            "user_profiles": [profile(i, [aud(101, "delete")])]}))
    with open(out, "w") as f:
        for key, msg in lines:
            f.write("%s\t%s\n" % (key, json.dumps(msg, separators=(",", ":"))))
    with open(expected, "w") as f:
        json.dump({"lists": {AUDIENCES[101]: sorted(email(i) for i in range(10, 150)),
                             AUDIENCES[102]: sorted(email(i) for i in range(60))},
                   "email_marketing_subscribed": sorted(email(i) for i in range(150) if i % 25 == 0)},
                  f, indent=1)


if __name__ == "__main__":
    main()
