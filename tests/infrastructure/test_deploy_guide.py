"""The README's deploy guide and configuration stay true to the code: the events to register in Stripe are exactly the
ones the webhook handles, and every parameter of the template is documented."""

from __future__ import annotations

import re
from typing import Any

from tests.infrastructure.conftest import ROOT
from usercredits.adapters.stripe.webhooks import HANDLED_EVENTS

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_guide_lists_exactly_the_events_the_webhook_handles() -> None:
    guide = _section("Deploying")
    step = guide[guide.index("Register the webhook") : guide.index("Add the endpoint's signing secret")]
    listed = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", step))
    assert listed == set(HANDLED_EVENTS)


def test_the_guide_says_how_to_answer_the_function_url_prompt_and_the_secrets_shape() -> None:
    guide = _section("Deploying")
    assert "Function Url has no authentication" in guide and "answer **y**" in guide
    assert '"secretKey"' in guide and '"webhookSecret"' in guide


def test_every_template_parameter_is_documented(template: dict[str, Any]) -> None:
    configuration = _section("Configuration")
    assert [name for name in template["Parameters"] if f"`{name}`" not in configuration] == []
