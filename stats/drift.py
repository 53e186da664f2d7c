"""Distribution drift by the population stability index, with an alarm threshold that accounts for window size.

PSI = Σᵢ (aᵢ − eᵢ)·ln(aᵢ/eᵢ) over B bins, e the reference window's shares and a the current window's. It is the
symmetrised Kullback–Leibler divergence, so with no change and windows of n and m values, PSI ≈ (1/n + 1/m)·χ²_{B−1}
(the two-sample G-test's limit; Yurdakul 2018, "Statistical properties of the population stability index"). The
alarm is PSI above that distribution's 1 − α quantile, not the fixed 0.1 or 0.25 rules of thumb, which at n = 100
alarm on most windows with no change at all. Bin edges are the reference window's quantiles; counts get +0.5 so an
empty bin does not make PSI infinite.
"""

from __future__ import annotations

import bisect
import math

from scipy import stats as scipy_stats

from .streaming import Streaming


def psi(reference: list[int], current: list[int]) -> float:
    """PSI of two histograms over the same bins (counts, smoothed by +0.5)."""
    total_ref = sum(reference) + 0.5 * len(reference)
    total_cur = sum(current) + 0.5 * len(current)
    value = 0.0
    for r, c in zip(reference, current, strict=True):
        e, a = (r + 0.5) / total_ref, (c + 0.5) / total_cur
        value += (a - e) * math.log(a / e)
    return value


def threshold(bins: int, n_reference: int, n_current: int, alpha: float) -> float:
    """The PSI that a no-change pair of windows exceeds with probability ≈ alpha."""
    return (1 / n_reference + 1 / n_current) * float(scipy_stats.chi2.ppf(1 - alpha, bins - 1))


class Psi(Streaming):
    """The first `window` values are the reference; then every `window` values (tumbling) are compared with it.

    >>> d = Psi(bins=4, window=50, alpha=0.01)
    >>> for i in range(100):
    ...     d.update(float(i % 50))  # the same values again
    >>> d.alarm, d.windows
    (False, 1)
    >>> for i in range(50):
    ...     d.update(100.0 + i)  # everything above the reference's range
    >>> d.alarm, round(d.get(), 2) > d.limit
    (True, True)
    """

    STATE = ("reference_values", "edges", "reference", "current", "value", "limit", "alarm", "windows")

    def __init__(self, bins: int = 10, window: int = 200, alpha: float = 0.01) -> None:
        if bins < 2 or window < 2 * bins or not 0 < alpha < 1:
            raise ValueError("Psi: bins >= 2, window >= 2 * bins and alpha in (0, 1)")
        self.bins, self.window, self.alpha = bins, window, alpha
        self._reset()

    def _reset(self) -> None:
        self.reference_values: list[float] = []  # until the reference window is full
        self.edges: list[float] = []
        self.reference: list[int] = []
        self.current: list[int] = []
        self.value = math.nan  # the last window's PSI
        self.limit = math.nan  # and its alarm threshold
        self.alarm = False  # the last window drifted
        self.windows = 0  # windows compared so far

    def update(self, x: float) -> None:
        if not self.reference:
            self.reference_values.append(x)
            if len(self.reference_values) == self.window:
                self._freeze()
            return
        self.current[bisect.bisect_right(self.edges, x)] += 1
        if sum(self.current) == self.window:
            self.value = psi(self.reference, self.current)
            self.limit = threshold(len(self.reference), self.window, self.window, self.alpha)
            self.alarm = self.value > self.limit
            self.windows += 1
            self.current = [0] * len(self.reference)

    def get(self) -> float:
        return self.value

    def _freeze(self) -> None:
        ordered = sorted(self.reference_values)
        cut = {ordered[len(ordered) * i // self.bins] for i in range(1, self.bins)}
        # ties (discrete values) merge bins instead of leaving them empty; a constant reference v still gets bins
        # below and above it
        self.edges = sorted(cut - {ordered[0]}) or [ordered[0], math.nextafter(ordered[0], math.inf)]
        self.reference = [0] * (len(self.edges) + 1)
        for x in self.reference_values:
            self.reference[bisect.bisect_right(self.edges, x)] += 1
        self.current = [0] * len(self.reference)
        self.reference_values = []
