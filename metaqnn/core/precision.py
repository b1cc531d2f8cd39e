"""Numeric precision of training passes: :data:`PRECISIONS` maps a name to the autocast dtype
of the forward pass and the loss (None: plain fp32), and :func:`autocast` enters it.

``bf16`` is ``torch.autocast`` with bfloat16: convolutions and matrix products run in bf16
(on GPUs' tensor cores, on CPUs with AMX or AVX-512 BF16), weights, optimizer state and
gradients stay fp32. Evaluation stays fp32 (as an exported model runs).
"""

from __future__ import annotations

import contextlib

import torch

#: Precision name -> autocast dtype of the training passes (None: plain fp32).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op for ``fp32``)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
