"""Routes that do not pay do not need Stripe: with PAYMENT_PROVIDER=stripe and no usable secret, the catalog and the
order reads answer; a route that pays answers 502 and writes nothing; Secrets Manager is not asked on every request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http import HTTPStatus as S
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

from tests.integration.conftest import Call
from usercredits.settings import get_ordering_settings


@pytest.fixture
def stripe_ordering(ordering_api: Call, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Call, list[str]]]:
    """The ordering function deployed with Stripe, its secret absent; the list of Secrets Manager reads."""
    from ordering import handler

    monkeypatch.setenv("PAYMENT_PROVIDER", "stripe")
    monkeypatch.setenv("STRIPE_SECRET_NAME", "user-credits/stripe")
    get_ordering_settings.cache_clear()
    handler.dependencies.cache_clear()
    parameters.clear_caches()
    reads: list[str] = []
    real_get_secret = parameters.get_secret

    def counting_get_secret(name: str, **kwargs: object) -> object:
        reads.append(name)
        return real_get_secret(name, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(parameters, "get_secret", counting_get_secret)
    yield ordering_api, reads
    get_ordering_settings.cache_clear()
    handler.dependencies.cache_clear()
    parameters.clear_caches()


def test_reads_answer_without_the_stripe_secret(stripe_ordering: tuple[Call, list[str]]) -> None:
    api, reads = stripe_ordering
    assert api("ordering/list_offers.json")[0] == S.OK
    assert api("ordering/list_orders.json")[0] == S.OK
    free = api("ordering/create_free_order.json", headers={"idempotency-key": "free-1"})
    assert free[0] == S.CREATED, free[1]  # a free order pays nothing: no Stripe either
    assert reads == []


def test_a_priced_order_without_the_secret_is_502_writes_nothing_and_reads_once(
    stripe_ordering: tuple[Call, list[str]], credits_items: Callable[[], list[dict[str, Any]]]
) -> None:
    api, reads = stripe_ordering
    before = len(credits_items())
    for key in ("priced-1", "priced-2", "priced-3"):
        status, body, _ = api("ordering/create_order.json", headers={"idempotency-key": key})
        assert (status, body["error"]) == (S.BAD_GATEWAY, "payment_gateway_error")
    assert len(credits_items()) == before  # no order whose payment can never be asked for
    assert reads == ["user-credits/stripe"]  # remembered for a few seconds, not read again on every request
