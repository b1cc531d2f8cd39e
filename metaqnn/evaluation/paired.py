"""Two classifiers compared on the same test images: which images only one of them gets
wrong, and the exact McNemar test of whether their error rates differ.

On a small test set (297 images on digits) an error-rate difference of a few images is often
chance; the pair of counts and the test's p-value say how much a difference means.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: with ``only_a`` images that only classifier A gets
    wrong and ``only_b`` that only B gets wrong, the chance of a split at least this uneven
    if each discordant image were equally likely to go either way (binomial, p = 1/2).

    Raises:
        ValueError: If a count is negative.
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0, got {only_a} and {only_b}")
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedErrors:
    """Errors of classifiers A and B on the same images."""

    only_a: int
    """Images A gets wrong and B right."""
    only_b: int
    """Images B gets wrong and A right."""
    both: int
    """Images both get wrong."""
    p_value: float
    """Exact two-sided McNemar p-value (:func:`mcnemar_p`)."""

    def describe(self, a: str, b: str) -> str:
        """One sentence, e.g. ``the winner gets 4 test images wrong that hand: x gets right,
        and hand: x 1 that the winner gets right (McNemar p = 0.38)``."""
        p = f"{self.p_value:.2g}"
        return (f"{a} gets {self.only_a} test images wrong that {b} gets right, and {b} "
                f"{self.only_b} that {a} gets right (exact McNemar p = {p})")  # fmt: skip


def paired_errors(wrong_a: Iterable[int], wrong_b: Iterable[int]) -> PairedErrors:
    """Compare the indices of the images each classifier gets wrong."""
    a, b = set(wrong_a), set(wrong_b)
    only_a, only_b = len(a - b), len(b - a)
    return PairedErrors(only_a, only_b, len(a & b), mcnemar_p(only_a, only_b))
