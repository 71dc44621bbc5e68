"""Every figure of the benchmark: small functions that each return result rows.

A :class:`Figure` names the rows it produces, so a figure that fails (or whose feature is missing
from the build) still shows up in the table, as not measured, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.context import Bench
    from bench.report import Row


@dataclass(frozen=True)
class Figure:
    ids: tuple[str, ...]
    run: Callable[[Bench], list[Row]]


def all_figures() -> list[Figure]:
    """In the order they run (and appear in the table)."""
    from . import breakers, drain, memory, metrics, probes, subscriber_list, throughput

    return [
        *throughput.FIGURES,
        *subscriber_list.FIGURES,
        *probes.FIGURES,
        *metrics.FIGURES,
        *memory.FIGURES,
        *breakers.FIGURES,
        *drain.FIGURES,
    ]
