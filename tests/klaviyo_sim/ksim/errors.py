"""Klaviyo-format error responses: ApiError carries the status, the JSON:API `errors` entries
and any headers; the request handler turns it into the response."""

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
    return ApiError(400, "invalid", "Invalid input.", detail, pointer=pointer, parameter=parameter)
