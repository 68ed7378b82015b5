"""Per-session pseudonyms: the same value gets the same `<TYPE_n>` token, keyed by an HMAC."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from voxledger.processors.redaction.exceptions import RedactionError

# Token numbers are drawn from 1..9999: short enough to read, wide enough that two sessions
# rarely give one value the same number.
TOKEN_RANGE = 9999
STATE_VERSION = 1


class Pseudonyms:
    """Tokens of one session; holds HMAC digests and numbers only, never the values."""

    def __init__(
        self, session_id: str, secret: bytes, numbers: dict[str, dict[str, int]] | None = None
    ) -> None:
        if not isinstance(secret, bytes | bytearray) or not secret:
            raise RedactionError("the pseudonym secret must be non-empty bytes")
        self.session_id = session_id
        self._secret = bytes(secret)
        self._numbers: dict[str, dict[str, int]] = {
            t: dict(by_digest) for t, by_digest in (numbers or {}).items()
        }
        self._taken = {t: set(by_digest.values()) for t, by_digest in self._numbers.items()}

    def token(self, entity_type: str, value: str) -> str:
        """The session's token for a normalised value, e.g. `<PHONE_NUMBER_4821>`."""
        digest = self._digest(entity_type, value)
        by_digest = self._numbers.setdefault(entity_type, {})
        number = by_digest.get(digest)
        if number is None:
            taken = self._taken.setdefault(entity_type, set())
            number = int(digest[:8], 16) % TOKEN_RANGE + 1
            while number in taken:  # another value of this session has it: take the next free
                number = number % TOKEN_RANGE + 1
            by_digest[digest] = number
            taken.add(number)
        return f"<{entity_type}_{number}>"

    def _digest(self, entity_type: str, value: str) -> str:
        message = "\x1f".join((self.session_id, entity_type, value)).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "session_id": self.session_id,
            "numbers": {t: dict(sorted(d.items())) for t, d in sorted(self._numbers.items())},
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any], secret: bytes) -> Pseudonyms:
        if state.get("version") != STATE_VERSION:
            raise RedactionError(f"unknown pseudonym state version {state.get('version')!r}")
        return cls(state["session_id"], secret, state.get("numbers") or {})
