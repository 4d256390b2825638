#!/usr/bin/env python3
"""Klaviyo API simulator for audience-worker tests and the local stack.

Serves the subset of Klaviyo's REST API the worker uses (docs/design.md section 5) on loopback,
validates every request against Klaviyo's published OpenAPI spec (revision 2026-07-15, vendored
in schemas/vendor/klaviyo/openapi-stable-2026-07-15.json), enforces the spec's rate limits
(x-klaviyo-ratelimit) and payload limits, runs bulk jobs asynchronously, keeps list/profile
state for assertions and injects faults on demand. See README.md next to this file.

This file is the entry point: the server and its command line, and make_server() for Python
callers. The simulator itself is the package ksim/ beside it (ksim/__init__.py lists its modules).

Python 3.11 standard library + jsonschema/openapi-schema-validator only.
"""

import argparse
import os
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:   # loaded by file path rather than run or imported from this folder
    sys.path.insert(0, _HERE)

from ksim.handler import Handler  # noqa: E402
from ksim.spec import Spec, default_spec_path  # noqa: E402
from ksim.state import Sim  # noqa: E402


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_server(host="127.0.0.1", port=0, spec_path=None, config=None):
    """Load the spec, build the state and bind. Returns (server, sim); call serve_forever()."""
    spec = Spec(spec_path or default_spec_path())
    sim = Sim(spec, config)
    handler = type("BoundHandler", (Handler,), {"sim": sim})
    return Server((host, port), handler), sim


def main(argv=None):
    ap = argparse.ArgumentParser(description="Klaviyo API simulator (tests/local stack)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--port-file", help="write the bound port here (atomically)")
    ap.add_argument("--spec", default=None, help="OpenAPI spec (default: the vendored schemas/vendor/klaviyo/...)")
    ap.add_argument("--job-delay", type=float, default=None, help="seconds a job stays queued and processing each")
    ap.add_argument("--job-jitter", type=float, default=None,
                    help="up to this many extra seconds of processing per job (jobs end out of order)")
    ap.add_argument("--latency-ms", default=None, metavar="LO,HI",
                    help="every API answer waits uniform(LO, HI) ms (Klaviyo: 100,300)")
    ap.add_argument("--time-scale", type=float, default=None, help="scale of rate-limit windows")
    ap.add_argument("--no-rate-limits", action="store_true")
    ap.add_argument("--check-responses", action="store_true")
    ap.add_argument("--request-log", metavar="FILE",
                    help="append a line per API request: arrival (monotonic s), operation, status")
    args = ap.parse_args(argv)
    cfg = {}
    if args.job_delay is not None:
        cfg["job_queued_s"] = cfg["job_processing_s"] = args.job_delay
    if args.job_jitter is not None:
        cfg["job_jitter_s"] = args.job_jitter
    if args.latency_ms is not None:
        lo, _, hi = args.latency_ms.partition(",")
        cfg["latency_ms"] = [float(lo), float(hi or lo)]
    if args.time_scale is not None:
        cfg["time_scale"] = args.time_scale
    if args.no_rate_limits:
        cfg["rate_limits"] = False
    if args.check_responses:
        cfg["check_responses"] = True
    if args.request_log:
        cfg["request_log"] = args.request_log
    t0 = time.monotonic()
    server, sim = make_server(args.host, args.port, args.spec, cfg)
    port = server.server_address[1]
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("klaviyo_sim listening on %s:%d (revision %s, startup %.2fs)"
          % (args.host, port, sim.spec.version, time.monotonic() - t0), flush=True)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.2)
    sim.stop()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
