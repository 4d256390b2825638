"""klaviyo_state.py -- what the test oracles read of the Klaviyo simulator's state (shared by
e2e_model.py and cluster_model.py): the state itself, the lists checked against a model
(each list exists exactly once, with exactly the members the model says), profiles by email."""
import json
import urllib.request


def load(url):
    """The simulator's /_sim/state at url."""
    return json.load(urllib.request.urlopen(url + "/_sim/state", timeout=10))


def profiles_by_email(st):
    return {p["email"]: p for p in st["profiles"] if p.get("email")}


def list_problems(st, want, only_expected=False):
    """Problems of the lists against want {name: sorted member emails}: a list missing or
    existing more than once, members missing or extra; with only_expected, lists the model does
    not name are problems too. Also the simulator's own response violations."""
    problems = []
    lists = {}
    for l in st["lists"]:
        lists.setdefault(l["name"], []).append(sorted(l["member_emails"]))
    for name, members in sorted(want.items()):
        got = lists.get(name)
        if got is None or len(got) != 1:
            problems.append("list %r exists %d times" % (name, 0 if got is None else len(got)))
        elif got[0] != members:
            problems.append("list %r: %d members, want %d; missing %s extra %s" % (
                name, len(got[0]), len(members), sorted(set(members) - set(got[0]))[:3],
                sorted(set(got[0]) - set(members))[:3]))
    if only_expected:
        extra = sorted(set(lists) - set(want))
        if extra:
            problems.append("unexpected lists %s" % extra[:3])
    if st.get("response_violations"):
        problems.append("simulator response violations: %d" % len(st["response_violations"]))
    return problems


def report(problems, verbose, limit=15):
    """Prints the first problems when verbose; True when there are none."""
    if verbose:
        for p in problems[:limit]:
            print("  " + p)
    return not problems
