"""Result rows and the table the benchmark prints (Markdown, so docs/BENCHMARKS.md can hold it as is)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

# Subprocesses print their result as one line with this prefix; their logs may share stdout.
JSON_MARK = "BENCH_JSON "


def marked_json(output: str) -> dict:
    """The last ``BENCH_JSON {...}`` line of a subprocess's output, parsed."""
    for line in reversed(output.splitlines()):
        if line.startswith(JSON_MARK):
            return json.loads(line[len(JSON_MARK) :])
    raise BenchError(f"no result line in the output:\n{output[-2000:]}")


class FeatureMissing(RuntimeError):
    """The build under test lacks what a figure measures (e.g. ``/live`` answers 404)."""


class BenchError(RuntimeError):
    """A measurement went wrong (errors under load, a server that did not start …)."""


@dataclass
class Row:
    """One figure: what was measured, the target we hold ourselves to, and whether it was met.

    ``met`` is None for reference figures without a target. ``error`` is set (and nothing else)
    when the figure could not be produced in this run.
    """

    figure: str
    title: str
    measured: str = ""
    target: str = ""
    met: bool | None = None
    data: dict = field(default_factory=dict)
    error: str = ""
    note: str = ""  # said after the verdict, e.g. that the noise is larger than the difference

    @property
    def produced(self) -> bool:
        return not self.error

    @property
    def verdict(self) -> str:
        if self.error:
            return f"**NOT MEASURED**: {self.error}"
        if self.met is None:
            verdict = "recorded"
        else:
            verdict = "met" if self.met else "**MISSED**"
        return f"{verdict} ({self.note})" if self.note else verdict


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Iterable[Row]) -> str:
    lines = ["| figure | measured | target | verdict |", "|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {_cell(row.title)} | {_cell(row.measured)} | {_cell(row.target)} | {_cell(row.verdict)} |"
        )
    return "\n".join(lines)


def rows_to_json(rows: Iterable[Row], **extra: object) -> str:
    payload = {
        **extra,
        "figures": [{**asdict(row), "produced": row.produced, "verdict": row.verdict} for row in rows],
    }
    return json.dumps(payload, indent=2, default=str)
