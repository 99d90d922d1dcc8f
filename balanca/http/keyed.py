"""Writes that honour `Idempotency-Key` (DESIGN.md): a retried or double-clicked write gets the
first final answer instead of acting twice.

The key is checked after 401, 413 and 400 (the endpoint's own checks run first) and scoped to
the key and the path; the answers are kept by `balanca.store.idempotency` for 24 hours.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.server import Request

from balanca.http.api import Answer, ApiError, Endpoint
from balanca.http.security import bearer
from balanca.store.idempotency import MAX_KEY, KeyReused, Receipt

Act = Callable[[Receipt | None], Coroutine[Any, Any, Answer]]
"""A write's action, given the receipt of its Idempotency-Key (or None)."""


class KeyedEndpoint(Endpoint):
    """An endpoint whose writes run once per `Idempotency-Key`."""

    def keyed(self, request: Request, act: Act) -> defer.Deferred[Answer]:
        """Run `act` once per key: the same key again gets the first final answer."""
        raw_key = request.getHeader(b"Idempotency-Key")
        if raw_key is None or self.api.keys is None:
            return defer.Deferred.fromCoroutine(act(None))
        key = raw_key.decode("utf-8", "replace")
        if not 1 <= len(key) <= MAX_KEY:
            raise ApiError(400, "bad Idempotency-Key", "1 to 255 characters")
        assert request.content is not None
        request.content.seek(0)
        receipt = Receipt.of(key, request.path.decode("utf-8", "replace"), request.content.read())
        return defer.Deferred.fromCoroutine(self._once(receipt, act))

    async def _once(self, receipt: Receipt, act: Act) -> Answer:
        keys = self.api.keys
        assert keys is not None
        try:
            first = await keys.begin(receipt)
        except KeyReused:
            raise ApiError(
                422,
                "Idempotency-Key reused",
                "this key was used with another body",
                "idempotency_key_reused",
            ) from None
        if first is not None:
            return first
        try:
            answer = await act(receipt)
        except Exception as error:
            failed = self._failed(Failure(error))
            await keys.end(receipt, failed, kept=False)
            return failed
        # A 201 is a record, whose answer its own transaction kept (ledger.append).
        await keys.end(receipt, answer, kept=answer[0] == 201)
        return answer

    def operator(self, request: Request) -> str | None:
        """The operator whose token the request carries, if any."""
        return self.api.access.operator(bearer(request.getHeader(b"Authorization")))
