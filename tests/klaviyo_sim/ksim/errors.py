"""Klaviyo-format error responses: ApiError carries the status, the JSON:API `errors` entries
and any headers; the request handler turns it into the response. The helpers below build the
errors the simulator answers in more than one place, worded once."""

import uuid


class ApiError(Exception):
    """A Klaviyo-format error response."""

    def __init__(self, status, code, title, detail, pointer=None, parameter=None, headers=None, more=None):
        super().__init__(detail)
        self.status = status
        self.headers = headers or {}
        self.errors = [self.entry(status, code, title, detail, pointer, parameter)] + (more or [])

    @staticmethod
    def entry(status, code, title, detail, pointer=None, parameter=None):
        e = {"id": str(uuid.uuid4()), "status": status, "code": code, "title": title,
             "detail": detail, "source": {}, "links": {}, "meta": {}}
        if pointer is not None:
            e["source"]["pointer"] = pointer
        if parameter is not None:
            e["source"]["parameter"] = parameter
        return e

    def body(self):
        return {"errors": self.errors}


def invalid(detail, pointer=None, parameter=None):
    """400 `invalid`, the answer to most bad requests."""
    return ApiError(400, "invalid", "Invalid input.", detail, pointer=pointer, parameter=parameter)


def invalid_all(problems):
    """One 400 answer listing problems, each (pointer, detail), in order (at most 100 entries)."""
    (pointer, detail), rest = problems[0], problems[1:100]
    e = invalid(detail, pointer=pointer)
    e.errors += [ApiError.entry(400, "invalid", "Invalid input.", d, pointer=p) for p, d in rest]
    return e


def not_found(detail, pointer=None, parameter=None):
    return ApiError(404, "not_found", "Not found.", detail, pointer=pointer, parameter=parameter)


def too_large(detail):
    return ApiError(413, "request_too_large", "Request too large.", detail)


def throttled(retry_after, headers):
    """429 with Klaviyo's wording; headers carry at least Retry-After."""
    return ApiError(429, "throttled", "Request was throttled.",
                    "Request was throttled. Expected available in %s seconds." % retry_after, headers=headers)
