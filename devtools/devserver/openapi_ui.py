"""``/openapi.json`` (the HTTP functions' OpenAPI documents merged, with bearer JWT auth) and ``/docs`` (Swagger UI
from the assets bundled with Powertools, no CDN)."""

from __future__ import annotations

import contextlib
import importlib
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from devtools.devserver.environment import ROOT
from devtools.devserver.replies import Reply

SECURITY_SCHEME = "bearerAuth"


def merged_openapi(base_url: str, folders: list[str]) -> str:
    """One OpenAPI document for the HTTP functions in ``folders`` (their ``app`` resolvers), with bearer JWT auth.

    The handlers are already imported as ``<folder>.handler``: their resolvers' documents are merged.
    """
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge

    from devtools.cfn import load_template

    description = (load_template().get("Description") or "user-credits").strip()
    merge = OpenAPIMerge(
        title="user-credits (local)",
        version=_project_version(),
        description=f"{description}\n\nLocal dev server: `make token USER=alice` prints a bearer token.",
        servers=[{"url": base_url}],  # type: ignore[list-item]
        security_schemes={SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},  # type: ignore[dict-item]
        security=[{SECURITY_SCHEME: []}],
        on_conflict="first",
    )
    # The imported apps' own documents, not discovered files: discovery finds resolvers by the name of the class
    # called, and ``app = HttpApiResolver()`` (our subclass of Powertools' resolver) is not a name it knows.
    for folder in folders:
        merge.add_schema(importlib.import_module(f"{folder}.handler").app.get_openapi_schema())
    return merge.get_openapi_json_schema()  # serialised through Powertools' OpenAPI model (enums as values)


def _project_version() -> str:
    import tomllib

    with contextlib.suppress(OSError, KeyError, tomllib.TOMLDecodeError):
        return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])
    return "0"


def swagger_page(spec_json: str) -> str:
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    return generate_swagger_html(
        spec_json.replace("</", "<\\/"),
        "/docs/swagger-ui-bundle.min.js",
        "/docs/swagger-ui.min.css",
        "/docs",
        None,
        persist_authorization=True,
    )


def swagger_asset(name: str) -> bytes | None:
    import aws_lambda_powertools.event_handler.openapi.swagger_ui as ui

    if name not in ("swagger-ui-bundle.min.js", "swagger-ui.min.css"):
        return None
    return (Path(ui.__file__).parent / name).read_bytes()


def docs_reply(path: str, raw_query: str, openapi_json: Callable[[], str]) -> Reply | None:
    """The document, Swagger UI, its OAuth2 redirect page or its assets for a ``GET`` of ``path``; ``None`` for any
    other path. ``openapi_json`` gives the merged document (built on first use)."""
    query = dict(urllib.parse.parse_qsl(raw_query))
    if path == "/openapi.json" or (path == "/docs" and query.get("format") == "json"):
        return Reply(200, [("Content-Type", "application/json")], openapi_json().encode())
    if path == "/docs" and query.get("format") == "oauth2-redirect":
        from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_oauth2_redirect_html

        return Reply(200, [("Content-Type", "text/html")], generate_oauth2_redirect_html().encode())
    if path in ("/docs", "/docs/"):
        return Reply(200, [("Content-Type", "text/html; charset=utf-8")], swagger_page(openapi_json()).encode())
    if path.startswith("/docs/") and (asset := swagger_asset(path.removeprefix("/docs/"))) is not None:
        kind = "text/css" if path.endswith(".css") else "application/javascript"
        return Reply(200, [("Content-Type", kind), ("Cache-Control", "max-age=3600")], asset)
    return None
