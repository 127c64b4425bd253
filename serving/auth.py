"""Bearer-token auth with three scopes: ``predict`` (inference), ``feedback`` (ground-truth
labels) and ``admin`` (weight, promote, rollback, rollout state; an admin token may also predict
and post labels).

Labels steer the loop (the monitor and the canary judge on them), so posting them is a scope of
its own: a predict token, handed to every client application, cannot post labels.

Tokens come from settings (``serving.auth.admin_tokens`` / ``predict_tokens`` /
``feedback_tokens``, plain or ``sha256:HEX``, held there as secrets:
:class:`driftloop.settings.BearerToken`) and are kept here only as SHA-256 digests; a presented
token is hashed and compared in constant time. No/unknown token: 401; a known token without the
scope: 403 naming the scope. Auth is on by default outside development
(``settings.auth_enabled``).
"""

from __future__ import annotations

import hashlib
import hmac

from driftloop.errors import AuthenticationError, PermissionDeniedError
from driftloop.settings import Settings

PREDICT = "predict"
FEEDBACK = "feedback"
ADMIN = "admin"
SCOPES = (PREDICT, FEEDBACK, ADMIN)


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        auth = settings.serving.auth
        self.enabled = settings.auth_enabled
        admin = auth.hashed(auth.admin_tokens)
        #: digests holding each scope (admin holds them all)
        self._scopes = {
            PREDICT: auth.hashed(auth.predict_tokens) | admin,
            FEEDBACK: auth.hashed(auth.feedback_tokens) | admin,
            ADMIN: admin,
        }
        self._known_tokens = set().union(*self._scopes.values())
        #: the scopes of each known digest, filled when a token is first checked in constant
        #: time (only configured tokens ever get an entry: bounded, and no per-request
        #: comparison loop over every token)
        self._checked: dict[str, frozenset[str]] = {}

    @staticmethod
    def _digest(header: str | None) -> str:
        if not header:
            raise AuthenticationError("missing bearer token: send 'Authorization: Bearer <token>'")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <token>'")
        return hashlib.sha256(token.encode()).hexdigest()

    @staticmethod
    def _known(digest: str, digests: set[str]) -> bool:
        return any(hmac.compare_digest(digest, d) for d in digests)

    def require(self, header: str | None, scope: str) -> str:
        """Check the Authorization header for ``scope``; returns the actor name for the audit
        log (``token:<first 8 hex of the digest>``, or ``anonymous`` with auth off)."""
        if not self.enabled:
            return "anonymous"
        if scope not in self._scopes:
            raise ValueError(f"unknown scope {scope!r} (known: {', '.join(SCOPES)})")
        digest = self._digest(header)
        scopes = self._checked.get(digest)
        if scopes is None:
            if not self._known(digest, self._known_tokens):
                raise AuthenticationError("unknown bearer token")
            scopes = frozenset(s for s in SCOPES if self._known(digest, self._scopes[s]))
            self._checked[digest] = scopes
        if scope not in scopes:
            raise PermissionDeniedError(f"this token lacks the {scope} scope")
        return f"token:{digest[:8]}"
