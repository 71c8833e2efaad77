"""CORS as the HttpApi's ``CorsConfiguration`` makes API Gateway answer it: preflights and the origin headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devtools.devserver.replies import Reply


@dataclass(frozen=True)
class CorsConfig:
    """The HttpApi's ``CorsConfiguration`` (parameters resolved to their defaults)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None

    @classmethod
    def from_template(cls, template: dict[str, Any] | None = None) -> CorsConfig | None:
        from devtools.cfn import load_template, resources_of_type

        template = template or load_template()
        parameters = template.get("Parameters") or {}

        def values(raw: Any) -> tuple[str, ...]:
            if isinstance(raw, dict) and "Ref" in raw:
                raw = str((parameters.get(raw["Ref"]) or {}).get("Default", "")).split(",")
            return tuple(str(v).strip() for v in (raw or []) if str(v).strip())

        for api in resources_of_type("AWS::Serverless::HttpApi", template).values():
            if config := (api.get("Properties") or {}).get("CorsConfiguration"):
                return cls(
                    values(config.get("AllowOrigins")),
                    values(config.get("AllowMethods")),
                    values(config.get("AllowHeaders")),
                    values(config.get("ExposeHeaders")),
                    config.get("MaxAge") if isinstance(config.get("MaxAge"), int) else None,
                )
        return None

    def origin_header(self, origin: str | None) -> list[tuple[str, str]]:
        if not origin or not ("*" in self.allow_origins or origin in self.allow_origins):
            return []
        headers = [("Access-Control-Allow-Origin", "*" if "*" in self.allow_origins else origin)]
        if self.expose_headers:
            headers.append(("Access-Control-Expose-Headers", ",".join(self.expose_headers)))
        return headers

    def preflight(self, origin: str | None) -> Reply:
        headers = self.origin_header(origin)
        if headers:
            headers = headers[:1] + [
                ("Access-Control-Allow-Methods", ",".join(self.allow_methods)),
                ("Access-Control-Allow-Headers", ",".join(self.allow_headers)),
            ]
            if self.max_age is not None:
                headers.append(("Access-Control-Max-Age", str(self.max_age)))
        return Reply(204, headers, b"")
