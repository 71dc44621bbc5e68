"""Side-by-side measurement: alternate A and B, keep the per-round ratios, summarise them."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """min / median / max of a series of measurements (or of per-round ratios)."""

    minimum: float
    median: float
    maximum: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no values to summarise")
        return cls(min(values), statistics.median(values), max(values), len(values))

    def format(self, spec: str = ".2f", unit: str = "") -> str:
        if self.count == 1:
            return f"{self.median:{spec}}{unit}"
        low, high = f"{self.minimum:{spec}}", f"{self.maximum:{spec}}"
        return f"{self.median:{spec}}{unit} (min {low}, max {high}, n={self.count})"

    def as_dict(self) -> dict:
        return {"min": self.minimum, "median": self.median, "max": self.maximum, "n": self.count}

    def noise_note(self, target: float) -> str:
        """A caveat for the verdict when single rounds fell on both sides of ``target``."""
        if self.minimum < target < self.maximum:
            return "rounds fell on both sides of the target: the noise is larger than the difference"
        return ""


@dataclass(frozen=True)
class SideBySide:
    """Absolute values of A and B per round, and the per-round ratio A / B."""

    a: Summary
    b: Summary
    ratio: Summary

    def as_dict(self) -> dict:
        return {"a": self.a.as_dict(), "b": self.b.as_dict(), "ratio": self.ratio.as_dict()}


def side_by_side(measure_a: Callable[[], float], measure_b: Callable[[], float], rounds: int) -> SideBySide:
    """Measure A and B alternately ``rounds`` times; the order flips every round (AB, BA, AB …)
    so that a slow drift of the machine does not favour either side."""
    a_values: list[float] = []
    b_values: list[float] = []
    for round_index in range(rounds):
        if round_index % 2 == 0:
            a_values.append(measure_a())
            b_values.append(measure_b())
        else:
            b_values.append(measure_b())
            a_values.append(measure_a())
    ratios = [a / b for a, b in zip(a_values, b_values, strict=True)]
    return SideBySide(Summary.of(a_values), Summary.of(b_values), Summary.of(ratios))
