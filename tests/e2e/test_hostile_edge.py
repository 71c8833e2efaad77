"""The hostile edge over HTTP, against the real ``make run`` stack (issue 14, section A): the dev server routes and
decodes paths as API Gateway does, answers every media type and every unsafe JSON body with the contract's error body,
asks admin routes for the admin scope, and serves bursts of concurrent clients without dropping a connection."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
import uuid
from http import HTTPStatus
from typing import Any

import pytest

from tests.e2e.conftest import Api, token_for

pytestmark = pytest.mark.e2e

CLIENTS = 32
REQUESTS_PER_CLIENT = 4
CONNECT_TIMEOUT_SECONDS = 0.9


def _error(result: Any, status: HTTPStatus, code: str) -> dict[str, Any]:
    assert result.status == status, result
    body: dict[str, Any] = result.json()
    assert body["error"] == code and body["message"], result
    return body


def test_an_encoded_subject_in_an_admin_path_is_the_decoded_user(api: Api, admin_token: str) -> None:
    # Given a user whose subject has the shape Auth0 gives it
    subject = f"auth0|e2e-{uuid.uuid4().hex[:12]}"
    grant = {"offerGroup": "AiTokens", "tokens": 9, "reason": "e2e edge"}
    # When an admin grants through the percent-encoded path
    path = f"/admin/users/{urllib.parse.quote(subject, safe='')}/grants"
    result = api.post(path, token=admin_token, json_body=grant, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert result.status == HTTPStatus.CREATED, result
    # Then the user named by that subject holds the tokens
    credits = api.get("/credits", token=token_for(subject)).json()
    assert sum(g["balance"] for g in credits["groups"] if g["offerGroup"] == "AiTokens") == 9


def test_a_user_token_never_reaches_an_admin_route_whatever_the_body(api: Api, user_token: str) -> None:
    for body in (b"{not json", b"[" * 10_000, b'{"tokens": "x"}'):
        result = api.post(
            "/admin/users/someone/grants", token=user_token, body=body, headers={"Content-Type": "application/json"}
        )
        _error(result, HTTPStatus.FORBIDDEN, "forbidden")


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "application/json; charset=UTF-8"])
def test_json_media_types_in_any_case_are_json(api: Api, user_token: str, content_type: str) -> None:
    result = api.post("/orders", token=user_token, body=b'{"offerId": "Free"}', headers={"Content-Type": content_type})
    assert result.status == HTTPStatus.CREATED, result


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded"])
def test_a_non_json_media_type_is_a_422(api: Api, user_token: str, content_type: str) -> None:
    result = api.post("/orders", token=user_token, body=b'{"offerId": "Free"}', headers={"Content-Type": content_type})
    _error(result, HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error")


@pytest.mark.parametrize(
    "body", [b"[" * 100_000 + b"]" * 100_000, b'{"offerId": "Free", "quantity": ' + b"9" * 5_000 + b"}"]
)
def test_json_a_parser_cannot_hold_is_a_422(api: Api, admin_token: str, body: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    for method, path in (("POST", "/orders"), ("POST", "/credits/AiTokens/consume"), ("PUT", "/customer")):
        _error(
            api.request(method, path, token=admin_token, body=body, headers=headers),
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "validation_error",
        )
    _error(
        api.put("/admin/offers/e2e-deep", token=admin_token, body=body, headers=headers),
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "validation_error",
    )


def test_a_subject_too_long_for_the_keys_is_a_422(api: Api) -> None:
    token = token_for("auth0|" + "x" * 994)
    _error(api.get("/credits", token=token), HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error")
    _error(
        api.post("/orders", token=token, json_body={"offerId": "Free"}),
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "validation_error",
    )


def test_concurrent_clients_are_all_served(api: Api, user_token: str) -> None:
    # Given 32 clients that start at the same instant, each opening a new connection for every request
    start = threading.Barrier(CLIENTS)
    failures: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        start.wait()
        for n in range(REQUESTS_PER_CLIENT):
            path = "/offers" if (index + n) % 2 else "/credits"
            # A connection the backlog dropped is only retried a second later (SYN retransmission): a connect
            # that takes longer than that is the drop, even where the retry would succeed.
            conn = http.client.HTTPConnection(api.host, api.port, timeout=CONNECT_TIMEOUT_SECONDS)
            try:
                conn.connect()
                assert conn.sock is not None
                conn.sock.settimeout(60)
                conn.request("GET", path, headers={"Authorization": f"Bearer {user_token}"})
                response = conn.getresponse()
                response.read()
                with lock:
                    statuses.append(response.status)
            except OSError as exc:  # refused, reset, timed out: what a too short backlog did
                with lock:
                    failures.append(f"client {index} request {n}: {type(exc).__name__}: {exc}")
            finally:
                conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # Then every request was answered, and answered 200
    assert not failures, failures[:5]
    assert len(statuses) == CLIENTS * REQUESTS_PER_CLIENT and set(statuses) == {HTTPStatus.OK}


def test_the_listen_backlog_holds_a_burst_of_clients() -> None:
    from devtools.devserver.server import DevServer

    assert DevServer.request_queue_size >= 4 * CLIENTS
