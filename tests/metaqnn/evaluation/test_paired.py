"""Paired test errors of two classifiers and the exact McNemar test."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metaqnn.core.data import Split
from metaqnn.core.training import evaluate
from metaqnn.evaluation.paired import mcnemar_p, paired_errors


@pytest.mark.parametrize(
    ("only_a", "only_b", "p"),
    [(0, 0, 1.0), (3, 3, 1.0), (5, 0, 0.0625), (0, 5, 0.0625), (6, 1, 0.125), (10, 0, 2 / 1024)],
)
def test_mcnemar_is_the_two_sided_binomial_tail(only_a, only_b, p):
    assert mcnemar_p(only_a, only_b) == pytest.approx(p)


def test_mcnemar_refuses_negative_counts():
    with pytest.raises(ValueError, match="-1"):
        mcnemar_p(-1, 2)


def test_paired_errors_count_the_images_only_one_gets_wrong():
    paired = paired_errors([1, 2, 3, 7, 9], [3, 4, 9])
    assert (paired.only_a, paired.only_b, paired.both) == (3, 1, 2)
    assert paired.p_value == pytest.approx(mcnemar_p(3, 1))
    text = paired.describe("the winner", "hand: x")
    assert "the winner gets 3 test images wrong that hand: x gets right" in text
    assert "hand: x 1 that the winner gets right" in text and "p = 0.62" in text


class _Sign(nn.Module):
    """Class 1 where the first pixel is positive, else class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.flatten(1)[:, :1] * self.scale  # (N, 1)
        return torch.cat([-first, first], dim=1)  # (N, 2)


def test_evaluate_lists_the_wrong_indices_across_batches():
    x = torch.tensor([1.0, -1.0, 2.0, -2.0, 3.0]).view(5, 1, 1, 1)
    y = torch.tensor([1, 1, 1, 0, 0])  # index 1 and index 4 are wrong
    model = _Sign().train()
    assert list(evaluate(model, Split(x, y), batch_size=2, wrong=True).wrong) == [1, 4]
    assert model.training  # the mode is restored
    assert list(evaluate(model, Split(x[:0], y[:0]), wrong=True).wrong) == []
    assert evaluate(model, Split(x, y)).wrong == ()  # listed only when asked for
