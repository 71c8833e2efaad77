"""Every setting a function reads from its environment is documented in the README's Configuration section."""

from __future__ import annotations

from pathlib import Path

from usercredits import settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_configuration() -> None:
    text = README.read_text()
    section = text[text.index("## Configuration") : text.index("## Deploying")]
    names = {
        name
        for model in vars(settings).values()
        if isinstance(model, type) and issubclass(model, settings._EnvModel)
        for name in model.model_fields
    }
    assert sorted(name for name in names if f"`{name}`" not in section) == []
