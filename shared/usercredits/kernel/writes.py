"""One atomic write: what it may hold (DynamoDB's limit, from which every plan of steps is sized) and the idempotency
record written in it with the result, so a retry finds the result instead of doing the work again. Both halves use
it; the DynamoDB adapters write it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

#: DynamoDB's limit on the actions of one TransactWriteItems.
MAX_TRANSACTION_ACTIONS = 100


@dataclass(frozen=True)
class IdempotencyRecord:
    """An ``Idempotency-Key`` to record in the same write as the result it produced."""

    scope: str
    key: str
    fingerprint: str
    result_id: str

    @classmethod
    def of(cls, scope: str, key: str, request: dict[str, object], result_id: str) -> IdempotencyRecord:
        """The record for ``request``: its fingerprint tells a retry from another request reusing the key."""
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        return cls(scope, key, digest, result_id)


class IdempotentReplayError(Exception):
    """Raised by a repository when the idempotency key was already recorded; carries what it recorded."""

    def __init__(self, result_id: str, fingerprint: str) -> None:
        super().__init__(result_id)
        self.result_id = result_id
        self.fingerprint = fingerprint
