"""store_state.py -- reading the store's packed Redis values from test models (written from
docs/redis.md, shared by ingest_model.py and cluster_model.py)."""


def attrs(at):
    """The attributes field of a user hash (fields.def USER_ATTRS; attr_state in
    worker/store/scripts/lib.lua): path -> value (JSON text; plain text for the special paths)."""
    if not at:
        return {}
    parts = at.split("\0")
    n = int(parts[0])
    paths = parts[1:1 + n]
    rest = parts[1 + n:]
    rest = rest[1 + n:] if rest[0] == "" else rest[1:]  # n versions, or the one they share
    out = {}
    for p, v in zip(paths, rest):
        out.setdefault(p, v)
    return out
