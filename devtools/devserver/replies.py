"""What the server answers: a status, headers and a body; from JSON, from an error, or from a handler's result."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_reply(status: int, payload: Any, extra_headers: list[tuple[str, str]] | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status, [("Content-Type", "application/json"), *(extra_headers or [])], body)


def error_reply(status: int, code: str, message: str) -> Reply:
    """The contract's error shape: ``{"error": code, "message": message}``."""
    return json_reply(status, {"error": code, "message": message})


def _header_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)


def lambda_result_reply(result: Any) -> Reply:
    """Turn what a handler returned into HTTP, as API Gateway does for payload 2.0 (a bare value means 200 JSON)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return json_reply(200, result)
    headers = [(str(k), _header_value(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), _header_value(v)) for v in values)
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = (raw if isinstance(raw, str) else json.dumps(raw)).encode("utf-8")
    if body and not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    hop_by_hop = {"content-length", "transfer-encoding", "connection"}
    return Reply(int(result["statusCode"]), [(k, v) for k, v in headers if k.lower() not in hop_by_hop], body)
