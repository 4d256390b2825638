"""Klaviyo's JSON:API `filter` query parameter, the subset the worker uses: op(field,value) terms
joined by ',' or wrapped in and(...), with the fields and operators each operation's spec
parameter allows; and matching records against the parsed conditions."""

import re

from .errors import invalid

FILTER_MAX_VALUES = 100              # any(...) list size (docs/design.md section 5; not stated in the spec)

_TOK = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<punct>[(),\[\]])|(?P<word>[^\s(),\[\]"']+))""")


def _unquote(s):
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def parse_filter(text, allowed):
    """-> list of (op, field, value) ANDed together. Iterative (no recursion on input)."""
    toks = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOK.match(text, pos)
        if not m or m.end() == pos:
            raise invalid("Invalid filter provided.", parameter="filter")
        pos = m.end()
        if m.group("str") is not None:
            toks.append(("s", _unquote(m.group("str"))))
        elif m.group("punct") is not None:
            toks.append(("p", m.group("punct")))
        elif m.group("word") is not None:
            toks.append(("w", m.group("word")))
    if len(toks) >= 3 and toks[0] == ("w", "and") and toks[1] == ("p", "(") and toks[-1] == ("p", ")"):
        toks = toks[2:-1]
    out = []
    i = 0

    def want(kind, val=None):
        nonlocal i
        if i >= len(toks) or toks[i][0] != kind or (val is not None and toks[i][1] != val):
            raise invalid("Invalid filter provided.", parameter="filter")
        i += 1
        return toks[i - 1][1]

    def scalar():
        nonlocal i
        if i < len(toks) and toks[i][0] in ("s", "w"):
            i += 1
            k, v = toks[i - 1]
            if k == "w":
                return {"true": True, "false": False, "null": None}.get(v, v)
            return v
        raise invalid("Invalid filter provided.", parameter="filter")

    while i < len(toks):
        op = want("w")
        want("p", "(")
        field = want("w")
        want("p", ",")
        if i < len(toks) and toks[i] == ("p", "["):
            i += 1
            vals = []
            while i < len(toks) and toks[i] != ("p", "]"):
                vals.append(scalar())
                if i < len(toks) and toks[i] == ("p", ","):
                    i += 1
            want("p", "]")
            value = vals
        else:
            value = scalar()
        want("p", ")")
        if i < len(toks):
            want("p", ",")
        if field not in allowed or op not in allowed[field]:
            raise invalid("'%s' is not a valid filter operator for field '%s'." % (op, field) if field in allowed
                          else "'%s' is not a valid field for the resource." % field, parameter="filter")
        if op == "any":
            if not isinstance(value, list):
                raise invalid("'any' requires a list of values.", parameter="filter")
            if len(value) > FILTER_MAX_VALUES:
                raise invalid("Filter 'any' accepts at most %d values." % FILTER_MAX_VALUES, parameter="filter")
        elif op == "equals" and isinstance(value, list):
            if len(value) != 1:
                raise invalid("'equals' requires a single value.", parameter="filter")
            value = value[0]
        out.append((op, field, value))
    return out


def filter_match(conds, rec):
    """conds as conditions() returns them: email values already lower case, any() as a set."""
    for op, field, value in conds:
        have = rec.get(field)
        if field == "email":
            have = (have or "").lower()
        if op == "equals" and have != value:
            return False
        if op == "any" and have not in value:
            return False
    return True


def conditions(op, query):
    """The parsed `filter` of a request to op (an empty list when there is none)."""
    conds = parse_filter(query["filter"], op.filter_fields) if query.get("filter") else []
    out = []
    for o, field, value in conds:  # normalised once, not once per record scanned
        if field == "email":
            value = [str(v).lower() for v in value] if isinstance(value, list) else str(value).lower()
        if o == "any":
            try:
                value = frozenset(value)
            except TypeError:
                pass
        out.append((o, field, value))
    return out
