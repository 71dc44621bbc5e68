"""Bearer tokens (``Authorization: Bearer <token>``, RFC 6750), the one parser of the ops endpoints."""

from __future__ import annotations

import hmac


def presented_token(authorization: str) -> str | None:
    """The token of an ``Authorization`` header value; None when the scheme is not Bearer."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def token_matches(authorization: str, expected: str) -> bool:
    """True when the header presents ``expected``, compared in constant time; never with no token set."""
    presented = presented_token(authorization)
    return bool(expected and presented) and hmac.compare_digest(presented.encode(), expected.encode())
