"""Dropout whose mask is cheap on the CPU.

PyTorch's CPU dropout draws its mask with ``bernoulli_``, one Mersenne-Twister draw per
element: profiled on the 2-core CPU, 189 ms of a 485 ms training step for
``[C(32,5,1), C(128,3,1), SM(10)]`` (batch 128, MetaQNN's dropout after the second conv), the
largest single cost of the step. :class:`FastDropout` draws 64 random bits per four elements
instead (``randint`` over all of int64, seen as four int16 lanes) and keeps an element when its
16-bit lane is at least ``round(p * 65536)``: the rate is ``p`` rounded to 1/65536, and the kept
elements are scaled by the exact inverse of their keep probability, so the expectation is
unchanged. Off the CPU (CUDA's dropout uses Philox and is fast), in eval mode and at ``p = 0``
it is ``nn.Dropout``. ``bench/dropout.py`` measures both, side by side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LANES = 65_536
"""Values of one 16-bit lane: the resolution of the rate."""


def keep_threshold(p: float) -> int:
    """The lane value (0..65535, unsigned) from which an element is kept at rate ``p``."""
    return min(LANES, max(0, round(p * LANES)))


def fast_dropout_mask(shape: list[int], p: float, dtype: torch.dtype) -> torch.Tensor:
    """A dropout mask of ``shape`` on the CPU: 0 for dropped elements, else the exact inverse
    of the keep probability (``p`` rounded to 1/65536). Drawn from the global CPU generator.

    Args:
        shape: The mask's shape.
        p: Dropout rate in [0, 1).
        dtype: The mask's dtype (the input's).

    Returns:
        The mask, a new CPU tensor.
    """
    numel = 1
    for size in shape:
        numel *= size
    threshold = keep_threshold(p)
    words = torch.randint(-(2**63), 2**63 - 1, ((numel + 3) // 4,), dtype=torch.int64)
    lanes = words.view(torch.int16)[:numel].view(shape)  # signed: unsigned value - 32768
    keep = lanes >= threshold - LANES // 2
    return keep.to(dtype).mul_(LANES / (LANES - threshold))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with a cheap CPU mask (see the module docstring); same ``p``, same
    train/eval behaviour, and an ``nn.Dropout`` for ``isinstance`` and ``state_dict``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drop elements of ``x`` with probability ``p`` in training mode; identity otherwise.
        Under TorchScript (an exported model) it is ``F.dropout``."""
        if (torch.jit.is_scripting() or not self.training or not 0.0 < self.p < 1.0
                or x.device.type != "cpu"):  # fmt: skip
            return F.dropout(x, self.p, self.training, self.inplace)
        return self._masked(x)

    @torch.jit.unused
    def _masked(self, x: torch.Tensor) -> torch.Tensor:
        return x * fast_dropout_mask(list(x.shape), self.p, x.dtype)
