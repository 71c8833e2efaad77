"""The bench's results: rows (a measured value and its budget), the printed table, ``bench-results.json``, and the
report the parts add their rows to."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BenchError(RuntimeError):
    """The bench could not measure (missing build, engine, unhooked client...): exit code 2."""


@dataclass(frozen=True)
class Row:
    """One measured value; ``budget`` None means reported only."""

    name: str
    metric: str
    value: float
    budget: float | None = None
    detail: str = ""  # printed, not written to the JSON file

    @property
    def over(self) -> bool:
        return self.budget is not None and self.value > self.budget

    @property
    def status(self) -> str:
        if self.budget is None:
            return "-"
        return "OVER" if self.over else "OK"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric, "value": self.value, "budget": self.budget}


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table: name, metric, value, budget, OK/OVER (``-`` when there is no budget), detail."""
    header = ("name", "metric", "value", "budget", "status", "detail")
    cells = [(r.name, r.metric, format_number(r.value), format_number(r.budget), r.status, r.detail) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *cells]) for i in range(len(header) - 1)]
    numeric = {2, 3}

    def render(line: Sequence[str]) -> str:
        parts = [
            str(cell).rjust(widths[i]) if i in numeric else str(cell).ljust(widths[i])
            for i, cell in enumerate(line[:-1])
        ]
        return ("  ".join(parts) + ("  " + line[-1] if line[-1] else "")).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in cells)])


def over_budget(rows: Sequence[Row]) -> list[Row]:
    return [row for row in rows if row.over]


def write_results(rows: Sequence[Row], path: Path) -> None:
    path.write_text(json.dumps([row.as_json() for row in rows], indent=2) + "\n", encoding="utf-8")


Part = Callable[[], tuple[list[Row], list[str], list[str]]]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self, label: str, part: Part) -> None:
        """Run one part; a part that cannot measure is an error, the other part still runs."""
        try:
            rows, notes, problems = part()
        except BenchError as exc:
            self.errors.append(f"{label}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - e.g. DynamoDB Local missing: report it, keep the other part
            self.errors.append(f"{label}: {type(exc).__name__}: {exc}")
            return
        self.rows += rows
        self.notes += [f"{label}: {note}" for note in notes]
        self.problems += problems

    def print(self, output: Path, seconds: float) -> None:
        print(format_table(self.rows))
        print()
        for note in self.notes:
            print(f"note  {note}")
        print(f"wrote {len(self.rows)} rows to {output} in {seconds:.1f} s")
        for row in over_budget(self.rows):
            print(f"OVER  {row.name} {row.metric} = {format_number(row.value)} > budget {format_number(row.budget)}")
        for problem in self.problems:
            print(f"FAIL  {problem}")
        for error in self.errors:
            print(f"ERROR {error}", file=sys.stderr)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 2
        return 1 if over_budget(self.rows) or self.problems else 0
