"""Offline check of template.yaml: expand the SAM transform with samtranslator, then run cfn-lint on the result.

cfn-lint 1.x no longer expands ``AWS::Serverless-2016-10-31`` itself, so a wrong ``!Ref``, a ``!GetAtt`` to a missing
resource or a bad runtime inside a SAM resource passes ``sam validate --lint`` unnoticed. Translating first (as
CloudFormation would) and linting the plain CloudFormation catches them. No AWS access is needed: managed policy names
resolve to nothing, local ``CodeUri``/``ContentUri`` folders become placeholder ``s3://`` URIs (after checking they
exist), and the region is faked.

Run it with the tools venv (samtranslator, SAM CLI and cfn-lint live there, not in the project venv)::

    .venv-tools/bin/python devtools/check_template.py [template.yaml] [--strict]

Exit status 1 on any translation error, missing local folder or cfn-lint error (``--strict``: warnings too).
The expanded template is kept in ``.aws-sam/check/template.json`` (cfn-lint's line numbers refer to it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # samtranslator's pseudo parameters need a region
os.environ.setdefault("SAM_CLI_TELEMETRY", "0")

from cfnlint.api import lint  # noqa: E402 - after the environment above
from cfnlint.config import ManualArgs  # noqa: E402
from samcli.yamlhelper import yaml_parse  # noqa: E402 - the parser `sam build` / `sam deploy` use
from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / ".aws-sam" / "check" / "template.json"
REGION = os.environ["AWS_DEFAULT_REGION"]

#: Values for parameters without a default (translation only; the expanded template keeps its Parameters).
FAKE_PARAMETERS = {
    "JwtIssuer": "https://issuer.example.com/",
    "JwtAudience": "user-credits",
}

#: cfn-lint lists every allowed value ("'X' is not one of ['A', 'B', ...]"): print how many instead.
_LONG_CHOICES = re.compile(r"is not one of \[((?:'[^']*', ){8,}'[^']*')\]")

#: Where each SAM resource type keeps its local code folder.
LOCAL_CODE_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


class OfflinePolicyLoader(ManagedPolicyLoader):
    """Resolves no managed policy names (we use policy templates and inline statements only): no IAM call."""

    def __init__(self) -> None:
        super().__init__(iam_client=None)  # type: ignore[arg-type]

    def load(self) -> dict[str, str]:
        return {}


def replace_local_code(template: dict[str, Any], base: Path) -> list[str]:
    """Point local code folders at placeholder S3 URIs, as `sam package` would; return the problems found."""
    problems: list[str] = []

    def placeholder(owner: str, prop: str, value: Any) -> Any:
        if not isinstance(value, str) or value.startswith("s3://"):
            return value
        folder = base / value
        if not folder.is_dir():
            problems.append(f"{owner}: {prop} {value!r} is not a folder next to the template")
        return f"s3://offline-check-bucket/{owner}.zip"

    globals_fn = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_fn:
        globals_fn["CodeUri"] = placeholder("Globals.Function", "CodeUri", globals_fn["CodeUri"])
    for logical_id, resource in template.get("Resources", {}).items():
        prop = LOCAL_CODE_PROPERTIES.get(resource.get("Type", ""))
        props = resource.get("Properties") or {}
        if prop and prop in props:
            props[prop] = placeholder(logical_id, prop, props[prop])
    return problems


def check_makefiles(template: dict[str, Any], base: Path) -> list[str]:
    """Every ``BuildMethod: makefile`` resource needs a Makefile with a ``build-<LogicalId>`` target."""
    problems = []
    globals_code = template.get("Globals", {}).get("Function", {}).get("CodeUri")
    for logical_id, resource in template.get("Resources", {}).items():
        if (resource.get("Metadata") or {}).get("BuildMethod") != "makefile":
            continue
        prop = LOCAL_CODE_PROPERTIES.get(resource.get("Type", ""), "CodeUri")
        folder = (resource.get("Properties") or {}).get(prop, globals_code)
        if not isinstance(folder, str):
            continue
        makefile = base / folder / "Makefile"
        if not makefile.is_file():
            problems.append(f"{logical_id}: BuildMethod makefile but {makefile.relative_to(base)} is missing")
        elif f"build-{logical_id}:" not in makefile.read_text(encoding="utf-8"):
            problems.append(f"{logical_id}: {makefile.relative_to(base)} has no build-{logical_id} target")
    return problems


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """Expand the SAM transform offline; raises InvalidDocumentException on SAM errors."""
    parameters: dict[str, Any] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        value = FAKE_PARAMETERS.get(name, spec.get("Default"))
        if value is None:
            continue
        # CloudFormation hands a transform list parameters as lists (SAM inlines some, e.g. CORS origins).
        is_list = spec.get("Type", "").startswith("List<") or spec.get("Type") == "CommaDelimitedList"
        parameters[name] = [v.strip() for v in str(value).split(",")] if is_list else value
    return transform(template, parameters, OfflinePolicyLoader())


def referenced_names(node: Any) -> set[str]:
    """Every name used in a ``Ref`` (or a ``${...}`` of a ``Fn::Sub`` string) anywhere below ``node``."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                if isinstance(text, str):
                    found.update(part.split("}", 1)[0].split(".")[0] for part in text.split("${")[1:])
            found |= referenced_names(value)
    elif isinstance(node, list):
        for value in node:
            found |= referenced_names(value)
    return found


def run_cfn_lint(expanded: dict[str, Any], used_parameters: set[str]) -> tuple[list[str], list[str]]:
    """Lint the expanded template; return (errors, warnings) as printable lines.

    W2001 "parameter not used" is dropped for parameters the SAM template does use: the transform inlines some of them
    (e.g. CORS origins go into the generated OpenAPI body as values).
    """
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(expanded, indent=2, sort_keys=False)
    OUTPUT.write_text(text, encoding="utf-8")
    matches = lint(text, config=ManualArgs(regions=[REGION]))
    errors, warnings = [], []
    for match in matches:
        rule_id = match.rule.id
        path = "/".join(str(p) for p in getattr(match, "path", []) or [])
        if rule_id == "W2001" and path.split("/")[-1] in used_parameters:
            continue
        message = _LONG_CHOICES.sub(lambda m: f"is not one of the {m[1].count(',') + 1} allowed values", match.message)
        line = f"{rule_id} {message} ({path or 'line ' + str(match.linenumber)})"
        (errors if rule_id.startswith("E") else warnings).append(line)
    return errors, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("template", nargs="?", default=str(ROOT / "template.yaml"))
    parser.add_argument("--strict", action="store_true", help="fail on cfn-lint warnings too")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    path = Path(args.template).resolve()
    template = yaml_parse(path.read_text(encoding="utf-8"))
    used_parameters = referenced_names({k: v for k, v in template.items() if k != "Parameters"})
    problems = check_makefiles(template, path.parent) + replace_local_code(template, path.parent)

    try:
        expanded = translate(template)
    except InvalidDocumentException as exc:
        problems += [f"SAM transform: {cause.message}" for cause in exc.causes] or [f"SAM transform: {exc}"]
        expanded = None

    errors, warnings = run_cfn_lint(expanded, used_parameters) if expanded is not None else ([], [])
    errors = problems + errors
    for line in warnings:
        print(f"warning: {line}")
    for line in errors:
        print(f"error:   {line}")

    elapsed = time.perf_counter() - started
    name = path.name
    if expanded is None:
        print(f"{name}: the SAM transform failed ({len(errors)} error(s), {elapsed:.1f} s)")
        return 1
    counts = (
        f"{len(expanded['Resources'])} CloudFormation resources, {len(errors)} error(s), {len(warnings)} warning(s)"
    )
    failed = bool(errors) or (args.strict and bool(warnings))
    print(f"{name}: {'FAILED' if failed else 'OK'}: {counts} ({elapsed:.1f} s; expanded: {OUTPUT.relative_to(ROOT)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
