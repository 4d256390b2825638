"""The simulator's own control endpoints under /_sim/ (no authentication): health, the state dump,
reset, the fault set and the configuration. Answers are plain application/json."""

import copy

from .faults import fault_set_error
from .state import DEFAULT_CONFIG


def handle(sim, method, path, body, query=None):
    """One control request with its parsed JSON body and query -> (status, JSON answer)."""
    if path == "/_sim/health" and method == "GET":
        return 200, {"status": "ok", "revision": sim.spec.version}
    if path == "/_sim/state" and method == "GET":
        return 200, sim.dump()
    if path == "/_sim/counts" and method == "GET":
        return 200, sim.counts((query or {}).get("property"))
    if path == "/_sim/reset" and method == "POST":
        sim.reset(config_too=bool(body.get("config")))
        return 200, {"status": "reset"}
    if path == "/_sim/faults" and method == "POST":
        err = fault_set_error(body)
        if err:
            return 400, err
        with sim.lock:
            sim.faults = copy.deepcopy(body)
        return 200, {"faults": body}
    if path == "/_sim/config" and method == "POST":
        unknown = set(body) - set(DEFAULT_CONFIG)
        if unknown:
            return 400, {"error": "unknown config keys", "keys": sorted(unknown)}
        lat = body.get("latency_ms", [0, 0])
        if (not isinstance(lat, list) or len(lat) != 2 or not all(isinstance(x, (int, float)) for x in lat)
                or not 0 <= lat[0] <= lat[1] <= 60000):
            return 400, {"error": "latency_ms takes [lo, hi] milliseconds, 0 <= lo <= hi <= 60000"}
        return 200, {"config": sim.configure(body)}
    return 404, {"error": "unknown control endpoint"}
