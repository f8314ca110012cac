"""The building blocks of the API's OpenAPI schemas: scalar schemas with the protocol's
bounds and the closed-object, array and reference helpers (``client.api.openapi`` composes
them). Kept apart only for the size of that module."""

from __future__ import annotations

from typing import Any

from chain.types import MAX_AMOUNT, SALT_LEN

S = dict[str, Any]

HEX32: S = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
HEX: S = {"type": "string", "pattern": "^([0-9a-f]{2})*$"}
ADDRESS: S = {"type": "string", "pattern": "^lc1[0-9a-f]{48}$",
              "description": "Checksummed address text: lc1 + hex(20 bytes) + hex(4-byte check)"}
PUBKEY: S = {"type": "string", "pattern": "^0[23][0-9a-f]{64}$",
             "description": "Compressed secp256k1 public key, 33 bytes as hex"}
SALT: S = {"type": "string", "pattern": f"^[0-9a-f]{{{2 * SALT_LEN}}}$",
           "description": f"{SALT_LEN} random bytes as hex"}
INT: S = {"type": "integer"}
COUNT: S = {"type": "integer", "minimum": 0}
HEIGHT_INT: S = {"type": "integer", "minimum": 0, "description": "Block height (0 = genesis)"}
AMOUNT: S = {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT,
             "description": "Credits (indivisible units)"}
POSITIVE_AMOUNT: S = {**AMOUNT, "minimum": 1, "description": "Credits, at least 1"}
POWER: S = {"type": "integer", "minimum": 1, "maximum": 1000}
TIME_MS: S = {"type": "integer", "minimum": 0, "description": "Milliseconds since the Unix epoch"}
WINDOW_MS: S = {"type": "integer", "minimum": 1, "maximum": 24 * 3600 * 1000,
                "description": "A window in milliseconds of block time"}
NUMBER: S = {"type": "number"}
STRING: S = {"type": "string"}
BOOL: S = {"type": "boolean"}


def text(max_length: int, min_length: int = 0) -> S:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def bounded(low: int, high: int) -> S:
    return {"type": "integer", "minimum": low, "maximum": high}


def nullable(schema: S) -> S:
    return {"oneOf": [schema, {"type": "null"}]}


def ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, S], *, description: str = "",
        optional: tuple[str, ...] = ()) -> S:
    """A closed object: every property documented, all required unless listed optional."""
    out: S = {"type": "object", "properties": properties,
              "required": [k for k in properties if k not in optional],
              "additionalProperties": False}
    if description:
        out["description"] = description
    return out


def array(items: S, max_items: int | None = None) -> S:
    out: S = {"type": "array", "items": items}
    if max_items is not None:
        out["maxItems"] = max_items
    return out


TOKEN_SCHEME = "apiToken"
SECURITY_SCHEMES: S = {TOKEN_SCHEME: {
    "type": "http", "scheme": "bearer",
    "description": "[API-AUTH.2-3] The node's API token ([api] token_file; the CLI sends "
                   "$LC_API_TOKEN). Every write needs it when the node has one, and a node "
                   "bound off loopback always has one; reads never need it."}}
RETRY_AFTER: S = {"Retry-After": {"description": "Seconds to wait before trying again",
                                  "schema": {"type": "integer", "minimum": 1}}}


def guard_writes(paths: dict[str, S], error: Any) -> dict[str, S]:
    """[API-AUTH.2] Every write takes the token (401 without it, or with a wrong one), a
    peer fetch of a blob too [API-AUTH.4]; uploads are limited per client [API-UPLOAD.4]."""
    for ops in paths.values():
        for method, op in ops.items():
            if method != "get":
                op["security"] = [{TOKEN_SCHEME: []}]
                op["responses"]["401"] = error("No token, or not this node's (code "
                                               "token_required / bad_token)")
    upload = paths["/blobs"]["post"]["responses"]
    upload["429"] = {**error("Over this client's upload rate, bytes or uploads under way"),
                     "headers": RETRY_AFTER}
    upload["503"] = {**upload["503"], "headers": RETRY_AFTER}
    download = paths["/blobs/{blob}"]["get"]
    download["security"] = [{}, {TOKEN_SCHEME: []}]
    download["responses"]["401"] = error("Not stored here, and fetching it from peers needs "
                                         "the token")
    return paths
