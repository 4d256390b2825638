"""Klaviyo's rate limits, per (account, operation), from each operation's x-klaviyo-ratelimit:
fixed burst (1 s), steady (60 s) and daily windows aligned to the last reset, scaled and
overridden by the configuration, with another integration's usage of the same account
(other_usage). The caller holds Sim.lock."""

import math
import time


def account_of(sim, key):
    """The account an API key belongs to (config `accounts`), else the key itself."""
    return (sim.config.get("accounts") or {}).get(key, key)


def other_rps(sim, account, key, op_id):
    """Requests per second another integration spends on (account, operation)."""
    usage = sim.config.get("other_usage") or {}
    for who in (account, key, "*"):
        per_op = usage.get(who)
        if isinstance(per_op, dict):
            for o in (op_id, "*"):
                if o in per_op:
                    return max(0.0, float(per_op[o]))
    return 0.0


def check(sim, key, op, arrived=None):
    """Fixed windows per (account, operation) as Klaviyo documents: burst (1 s), steady
    (60 s), daily where the spec has one. Another integration's usage (other_usage) fills the
    burst and steady windows of the same account at a constant rate. A request counts in the
    windows of its arrival (`arrived`, time.monotonic() when its headers were read; default
    now), not of the moment a handler thread gets to this check: while one thread decodes a
    multi-megabyte import, the others wait for Python's lock, up to 0.5 s measured, and a
    request counted that late would fall into the next window as Klaviyo's gateway does not
    count it. -> (ok, headers): on success the RateLimit-* headers of the steady window, else
    Retry-After only."""
    cfg = sim.config
    limits = dict(op.limits)
    overrides = (cfg.get("rate_limit_overrides") or {}).get(op.op_id, {})
    for name, n in overrides.items():
        limits[name] = (int(n), limits.get(name, (0, {"burst": 1.0, "steady": 60.0, "daily": 86400.0}[name]))[1])
    if not cfg.get("rate_limits", True) or not limits:
        return True, {}
    account = account_of(sim, key)
    rps = other_rps(sim, account, key, op.op_id)
    now = (time.monotonic() if arrived is None else arrived) - sim.epoch
    ts = float(cfg.get("time_scale", 1.0)) or 1.0
    scale = float(cfg.get("rate_limit_scale", 1.0))
    state = []
    for name, (n, window) in limits.items():
        if name not in overrides:
            n = max(1, int(n * scale))
        w = window * ts
        idx = int(now // w)
        own = sim.rate.get((account, op.op_id, name), {}).get(idx, 0)
        other = min(n, int(rps * (now - idx * w))) if name in ("burst", "steady") else 0
        reset = (idx + 1) * w - now
        state.append((name, n, idx, own, own + other, reset))
    over = [st for st in state if st[4] >= st[1]]
    if over:
        wait = max(st[5] for st in over)
        sim.throttled[op.op_id] = sim.throttled.get(op.op_id, 0) + 1
        return False, {"Retry-After": str(max(1, math.ceil(wait)))}
    for name, n, idx, own, used, reset in state:
        # counts per window index: requests are checked slightly out of arrival order
        counts = sim.rate.setdefault((account, op.op_id, name), {})
        counts[idx] = own + 1
        for old in [i for i in counts if i < idx - 2]:
            del counts[old]
    steady = next((st for st in state if st[0] == "steady"), state[0])
    return True, {"RateLimit-Limit": str(steady[1]),
                  "RateLimit-Remaining": str(max(0, steady[1] - steady[4] - 1)),
                  "RateLimit-Reset": str(max(0, math.ceil(steady[5])))}
