"""Faults injected on demand (POST /_sim/faults): keys revoked, 429 storms, dropped connections,
slow answers, server errors (before or after the request is applied) and answers lost after the
request was applied. Each check takes the Sim and counts what it injects in faults_injected."""

import re
import time
from urllib.parse import unquote

from .errors import ApiError, throttled

FAULT_KEYS = {"error_rate_5xx", "status", "error_after_apply", "storm_429", "slow_ms",
              "drop_connections", "drop_after_apply", "unauthorized_keys", "paths",
              "reject_containing", "anonymous_import_errors", "slow_jobs"}
DROP_AFTER_APPLY_KEYS = {"count", "rate", "ops", "paths"}


class DropConnection(Exception):
    """Close the connection without an answer; applied_status is the status of a request that
    was applied before its answer was lost (drop_after_apply), else None."""

    def __init__(self, applied_status=None):
        super().__init__("dropped")
        self.applied_status = applied_status


def fault_set_error(body):
    """Why body is not a fault set (a JSON object for the 400 answer), else None."""
    unknown = set(body) - FAULT_KEYS
    if unknown:
        return {"error": "unknown fault keys", "keys": sorted(unknown)}
    sj = body.get("slow_jobs")
    if sj is not None and (not isinstance(sj, dict) or set(sj) - {"count", "extra_s"}
                           or not isinstance(sj.get("count", 0), int)
                           or not isinstance(sj.get("extra_s", 0), (int, float))):
        return {"error": "slow_jobs takes an object {count: int, extra_s: seconds}"}
    daa = body.get("drop_after_apply")
    if daa is not None and (not isinstance(daa, dict) or set(daa) - DROP_AFTER_APPLY_KEYS):
        return {"error": "drop_after_apply takes an object with keys %s" % sorted(DROP_AFTER_APPLY_KEYS)}
    return None


def _fault_set(sim, path):
    """The active fault set when it applies to path (its `paths` regex), else None.
    Caller holds sim.lock."""
    f = sim.faults
    if not f or (f.get("paths") and not re.search(f["paths"], path)):
        return None
    return f


def _count_fault(sim, kind):
    sim.faults_injected[kind] = sim.faults_injected.get(kind, 0) + 1


def unauthorized(sim, key):
    """unauthorized_keys: True when key is to get 401. Caller holds sim.lock."""
    bad = key in (sim.faults.get("unauthorized_keys") or [])
    if bad:
        _count_fault(sim, "unauthorized")
    return bad


def storm(sim, path, label):
    """storm_429: the next N requests get 429 (not counted against the rate windows)."""
    with sim.lock:
        f = _fault_set(sim, path)
        s = f.get("storm_429") if f else None
        if not s or s.get("count", 0) <= 0:
            return
        s["count"] -= 1
        _count_fault(sim, "storm_429")
        sim.throttled[label] = sim.throttled.get(label, 0) + 1
        ra = str(s.get("retry_after", 1))
    raise throttled(ra, {"Retry-After": ra})


def before(sim, path):
    """drop_connections, slow_ms and error_rate_5xx. Returns the error to answer after the
    request was applied (error_after_apply), else None; raises for the other faults."""
    with sim.lock:
        f = _fault_set(sim, path)
        if not f:
            return None
        if f.get("drop_connections", 0) > 0:
            f["drop_connections"] -= 1
            _count_fault(sim, "drop_connections")
            raise DropConnection()
        slow = f.get("slow_ms", 0)
        fail = f.get("error_rate_5xx", 0) and sim.rng.random() < float(f["error_rate_5xx"])
        st = int(f.get("status", 503))
        after_apply = bool(f.get("error_after_apply"))
        if fail:
            _count_fault(sim, "5xx")
    if slow:
        time.sleep(slow / 1000.0)
    if fail:
        err = ApiError(st, "error", "A server error occurred.", "Simulated server error.")
        if after_apply:
            return err
        raise err
    return None


def reject_whole(sim, url, raw):
    """reject_containing [text...]: a request whose URL (decoded) or body holds one of the texts
    gets a 400 that names no record, as Klaviyo answers some bad values: the whole request is
    refused and the client cannot tell which of its records is at fault."""
    with sim.lock:
        texts = list(sim.faults.get("reject_containing") or [])
    if not texts:
        return
    hay = unquote(url) + "\n" + (raw.decode("utf-8", "replace") if raw else "")
    if any(t in hay for t in texts):
        with sim.lock:
            _count_fault(sim, "reject_whole")
        raise ApiError(400, "invalid", "Invalid input.", "Simulated: a value of the request is refused.")


def drop_after_apply(sim, path, op):
    """drop_after_apply {count, rate, ops, paths}: True when this applied request's answer is
    to be lost (the connection closes without a response)."""
    with sim.lock:
        d = sim.faults.get("drop_after_apply")
        if not d:
            return False
        if d.get("ops") and op.op_id not in d["ops"]:
            return False
        if d.get("paths") and not re.search(d["paths"], path):
            return False
        if d.get("count", 0) > 0:
            d["count"] -= 1
        elif not (d.get("rate") and sim.rng.random() < float(d["rate"])):
            return False
        _count_fault(sim, "drop_after_apply")
        return True
