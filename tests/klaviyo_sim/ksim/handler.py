"""The HTTP request handler: reads the request, routes /_sim/ to the control endpoints and /api/
to the served operations through the checks in Klaviyo's order (URL length, authentication,
injected 429 storm, rate limit, revision, injected faults, the body, the operation, after-apply
faults), logs each request in the state and, on request, validates its own responses against the
spec."""

import json
import re
import socket
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from . import control, endpoints, faults, ratelimit
from .errors import ApiError, not_found, throttled, too_large
from .faults import DropConnection
from .resources import now_iso
from .spec import JSONAPI, Operation
from .validate import check_revision, request_body

MAX_BODY = 10 * 1024 * 1024          # hard cap on any request body we read
RETRY_AFTER_SLACK_S = 0.05         # clock and network slack a client gets on Retry-After
IN_FLIGHT_SLACK_S = 0.05           # a request arriving this soon after a 429's answer was written
                                   # may have been sent before the client read it


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "klaviyo-sim/1"
    sim = None  # set by make_server

    def log_message(self, fmt, *args):  # quiet; the request log lives in /_sim/state
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_PUT(self):
        self._dispatch("PUT")

    # -- plumbing ----------------------------------------------------------------------------
    def _read_body(self, limit):
        def check_size(n):
            if n > limit:   # the rest of the body stays unread: the connection cannot be reused
                self.close_connection = True
                raise too_large("Payload exceeds %d bytes." % limit)
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    n = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise ApiError(400, "invalid", "Invalid input.", "Malformed chunked body.")
                if n == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    break
                total += n
                check_size(total)
                chunks.append(self.rfile.read(n))
                self.rfile.readline(8)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        check_size(n)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body=None, headers=None, ctype=JSONAPI):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _base(self):
        return "http://" + (self.headers.get("Host") or "%s:%d" % self.server.server_address[:2])

    # -- dispatch ----------------------------------------------------------------------------
    def _dispatch(self, method):
        sim = self.sim
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        if path.startswith("/_sim"):
            return self._control(method, path, query)
        op, params = sim.spec.match(method, path)
        self.arrived = time.monotonic()  # request line and headers read; the body not yet
        self.counted = None              # when the rate limiter counted it (the body read)
        self.throttled_for = None        # (key, op_id), Retry-After s: this request got a 429
        label = op.op_id if isinstance(op, Operation) else "%s %s" % (method, op)
        with sim.lock:  # requests being handled at once (a client's requests in flight)
            sim.in_flight[label] = sim.in_flight.get(label, 0) + 1
            now_total = sum(sim.in_flight.values())
            sim.max_in_flight["*"] = max(sim.max_in_flight.get("*", 0), now_total)
            sim.max_in_flight[label] = max(sim.max_in_flight.get(label, 0), sim.in_flight[label])
        self.in_flight_label = label
        try:
            return self._dispatch_op(method, path, query, op, params, label)
        finally:
            self._leave()

    def _leave(self):
        """The request is no longer being handled (once): called just before its answer is
        written, so a client that reads the answer and sends its next request is never counted
        twice at the same moment."""
        label, self.in_flight_label = self.in_flight_label, None
        if label is not None:
            with self.sim.lock:
                self.sim.in_flight[label] = max(0, self.sim.in_flight.get(label, 0) - 1)

    def _dispatch_op(self, method, path, query, op, params, label):
        sim = self.sim
        status, body, headers = 500, None, {}
        counted = None  # the status recorded in req_counts, when it differs from the one sent
        raw = b""
        try:
            try:
                raw = self._read_body(MAX_BODY)
            except ApiError as e:
                status, body, headers = e.status, e.body(), e.headers
                return
            max_url = int(sim.config.get("max_url_bytes") or 0)
            if max_url and len(self.path.encode("latin-1", "replace")) > max_url:
                # Klaviyo's edge refuses it before authentication or rate limiting.
                raise ApiError(414, "request_uri_too_long", "Request URI too long.",
                               "The request URL exceeds %d bytes." % max_url)
            if not isinstance(op, Operation):
                if op == "404":
                    raise not_found("The requested path was not found.")
                if op == "405":
                    raise ApiError(405, "method_not_allowed", "Method not allowed.", "Method %s is not allowed." % method)
                raise ApiError(501, "not_implemented", "Not implemented.", "This endpoint is not simulated.")
            status, body, headers = self._api(op, params, method, path, query, raw, label)
        except DropConnection as d:
            # The connection is cut in `finally`, after the request is counted: a client that
            # sees the cut and reads /_sim/state at once must find the request there.
            counted = ("%d-dropped" % d.applied_status) if d.applied_status else None
            status = 0
            self.close_connection = True
            return
        except ApiError as e:
            status, body, headers = e.status, e.body(), e.headers
        finally:
            with sim.lock:
                key = counted or str(status)
                sim.req_counts.setdefault(label, {})
                sim.req_counts[label][key] = sim.req_counts[label].get(key, 0) + 1
                sim.recent.append({"t": now_iso(), "method": method, "path": path, "op": label,
                                   "status": status, "revision": self.headers.get("revision"),
                                   "content_type": self.headers.get("Content-Type")})
                if sim.config.get("record_bodies"):
                    sim.recent[-1]["query"] = query
                    sim.recent[-1]["body"] = raw.decode("utf-8", "replace") if raw else None
                if counted:
                    sim.recent[-1]["dropped_after_apply"] = True
                del sim.recent[:-200]
            log = "%.4f %s %s %.4f" % (self.arrived, label, key,
                                       (self.counted or self.arrived) - self.arrived)
            if not status:
                self._leave()
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            else:
                lo, hi = sim.config.get("latency_ms") or (0, 0)
                if hi > 0:
                    with sim.lock:
                        wait = sim.latency_rng.uniform(lo, hi) / 1000.0
                    time.sleep(wait)
                if sim.config.get("check_responses") and isinstance(op, Operation) and body is not None:
                    self._check_response(op, status, body)
                self._leave()
                self._send(status, body, headers)
                if self.throttled_for:
                    answered = time.monotonic()
                    with sim.lock:
                        sim.retry_after_until[self.throttled_for[0]] = {
                            "answered": answered, "until": answered + self.throttled_for[1]}
            if sim.config.get("request_log"):
                with sim.lock, open(sim.config["request_log"], "a") as f:
                    f.write("%s %.4f\n" % (log, time.monotonic()))

    def _check_response(self, op, status, body):
        v = op.response_validator(status)
        if v is None:
            return
        for e in list(v.iter_errors(body))[:5]:
            with self.sim.lock:
                self.sim.response_violations.append({"op": op.op_id, "status": status,
                                                     "path": "/" + "/".join(str(p) for p in e.absolute_path),
                                                     "message": e.message[:200]})

    def _api(self, op, params, method, path, query, raw, label):
        """Order: authentication, injected 429 storm, rate limit (every answer after it carries
        the RateLimit-* headers of the steady window), revision, injected faults, body checks,
        the handler, then the after-apply faults."""
        sim = self.sim
        auth = self.headers.get("Authorization") or ""
        m = re.match(r"^Klaviyo-API-Key\s+(\S+)$", auth.strip())
        if not m:
            raise ApiError(401, "not_authenticated", "Authentication credentials were not provided.",
                           "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.")
        key = m.group(1)
        with sim.lock:
            allowed = sim.config.get("api_keys")
            bad = faults.unauthorized(sim, key)
        if bad or (allowed is not None and key not in allowed):
            raise ApiError(401, "not_authenticated", "Incorrect authentication credentials.",
                           "Incorrect authentication credentials.")
        # A request sent after the client received a 429 on the same key and operation, before
        # its Retry-After elapsed, is a client bug: recorded (the soak's oracle requires none),
        # then handled as usual. The wait counts from the moment the 429's answer was written;
        # a request arriving right after it was on the wire already (a client with several
        # requests in flight cannot have known).
        now = self.arrived
        with sim.lock:
            w = sim.retry_after_until.get((key, op.op_id))
            if (w is not None and w["answered"] is not None and now > w["answered"] + IN_FLIGHT_SLACK_S
                    and now < w["until"] - RETRY_AFTER_SLACK_S):
                sim.retry_after_violations.append({"op": op.op_id, "early_s": round(w["until"] - now, 3)})
        try:
            faults.storm(sim, path, label)
            with sim.lock:
                self.counted = time.monotonic()
                ok, rl_headers = ratelimit.check(sim, key, op, self.arrived)
            if not ok:
                raise throttled(rl_headers["Retry-After"], rl_headers)
        except ApiError as e:
            self.throttled_for = ((key, op.op_id), float(e.headers.get("Retry-After", 0)))
            raise
        try:
            check_revision(self.headers.get("revision"), {sim.spec.version} | set(sim.config.get("revisions") or []))
            after = faults.before(sim, path)
            faults.reject_whole(sim, self.path, raw)
            body = request_body(op, raw, self.headers.get("Content-Type"), sim.config.get("strict_content_type"))
            rq = endpoints.Request(self._base(), op, params, query, body, path)
            status, out = endpoints.HANDLERS[op.handler_name](sim, rq)
            if after is not None:
                raise after
            if 200 <= status < 300 and faults.drop_after_apply(sim, path, op):
                raise DropConnection(status)
            return status, out, rl_headers
        except ApiError as e:
            e.headers.update(rl_headers)
            raise

    # -- control endpoints -------------------------------------------------------------------
    def _control(self, method, path, query):
        try:
            raw = self._read_body(MAX_BODY)
            body = json.loads(raw) if raw else {}
        except (ValueError, ApiError):
            return self._send(400, {"error": "bad json"}, ctype="application/json")
        status, out = control.handle(self.sim, method, path, body, query)
        return self._send(status, out, ctype="application/json")
