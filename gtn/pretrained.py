"""Teachers that ship with the package: meta-trained once, stored as fp16 weights without
optimiser state (a few MB), and usable by name wherever a teacher checkpoint is asked for
(``--gtn-checkpoint mnist``; :func:`gtn.meta.checkpoint_file` resolves the name).

An exported file is a meta-training checkpoint whose optimiser and scheduler states are empty
and whose ``exported`` key is true: it teaches and it can seed ``--init-from``, but it cannot be
resumed. :func:`export_teacher` writes one from a run's checkpoint; ``metaqnn gtn export``
is its command, and ``metaqnn gtn list`` prints :data:`PRETRAINED`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gtn.io import atomic_save

#: Where the shipped files live.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


@dataclass(frozen=True)
class Pretrained:
    """One shipped teacher."""

    file: str
    """File name in :data:`PRETRAINED_DIR`."""
    dataset: str
    """The dataset it teaches."""
    sha256: str
    """Checksum of the file."""
    command: str
    """The command that meta-trained it, and the one that exported it."""
    about: str
    """Learner, width, outer steps, wall time, machine."""

    @property
    def path(self) -> Path:
        """The file."""
        return PRETRAINED_DIR / self.file


#: Name -> shipped teacher.
PRETRAINED: dict[str, Pretrained] = {
    "mnist": Pretrained(
        file="mnist.pt",
        dataset="mnist",
        sha256="fb27f3248d79bcad3b541c5c9910da6610b3cb92ac3c2ef280825d06b9b046cc",
        command=(
            "metaqnn design --dataset mnist --budget 2h --logdir runs/design_mnist (its teacher "
            "phase); metaqnn gtn export runs/design_mnist/teacher --out gtn/pretrained/mnist.pt "
            "--precision int8"
        ),
        about=(
            "whole-space teacher at widths / 16: relative step rule, warm start of 600 fit "
            "steps on real images, then 87 outer steps of the learned schedule (27 min on a "
            "2-core CPU); learners reach 0.77 on real meta-batches; int8 (fp16 would be 14.4 MB; "
            "rewards of 24 architectures: Spearman 0.997 against fp32, fp16 0.995)"
        ),
    ),
    "fashion-mnist": Pretrained(
        file="fashion-mnist.pt",
        dataset="fashion-mnist",
        sha256="98d9b0f6c2d8a36a1a6ec6d78d79cab6fd483bfe699a78431e73e16ccdfe2aed",
        command=(
            "metaqnn design --dataset fashion-mnist --budget 2h --logdir "
            "runs/design_fashion-mnist (its teacher phase); metaqnn gtn export "
            "runs/design_fashion-mnist/teacher --out gtn/pretrained/fashion-mnist.pt "
            "--precision int8"
        ),
        about=(
            "whole-space teacher at widths / 16, the MNIST teacher's recipe: relative step "
            "rule, warm start of 600 fit steps on real images (106 s), then 170 outer steps of "
            "the learned schedule (27 min on a 2-core CPU); the design search's GTN rewards "
            "(1,982 architectures, validation accuracy after 32 synthetic steps) averaged "
            "0.666 at random and reached 0.829; int8"
        ),
    ),
    "digits": Pretrained(
        file="digits.pt",
        dataset="digits",
        sha256="36bf64c438c831444d3b325020af1be15218839e585dd8169249605c03b8595d",
        command=(
            "metaqnn gtn train --dataset digits --outer-steps 300 --logdir "
            "runs/gtn/digits-pretrained; metaqnn gtn export runs/gtn/digits-pretrained --out "
            "gtn/pretrained/digits.pt"
        ),
        about=(
            "whole-space teacher at full width (the digits defaults: 256-wide generator, 32 "
            "noise dims, inner batch 64), 300 outer steps (29 min on a 2-core CPU shared with "
            "other jobs); learners reach 0.77 on real meta-batches, the paper learner 0.93 "
            "test after 32 steps; fp16"
        ),
    ),
}


def sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_file(name: str) -> Path:
    """The file of the shipped teacher ``name``, its checksum checked.

    Raises:
        ValueError: If ``name`` is not shipped, its file is missing or its checksum differs.
    """
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained teacher {name!r}; shipped: {', '.join(PRETRAINED)}")
    entry = PRETRAINED[name]
    if not entry.path.is_file():
        raise ValueError(f"pretrained teacher {name!r}: {entry.path} is missing (reinstall)")
    found = sha256(entry.path)
    if found != entry.sha256:
        raise ValueError(f"pretrained teacher {name!r}: {entry.path} has sha256 {found[:12]}..., "
                         f"expected {entry.sha256[:12]}... (a damaged install)")  # fmt: skip
    return entry.path


#: Tensors with at least this many elements are stored as int8 by ``precision="int8"``.
INT8_MIN_ELEMENTS = 65536
#: Export precisions.
PRECISIONS = ("fp16", "int8")


def _quantize(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """Symmetric int8 with one fp16 scale per output row (dimension 0)."""
    rows = weight.float().reshape(weight.shape[0], -1)
    scale = rows.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return {"q": q.reshape(weight.shape), "scale": scale.half()}


def dequantize(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with its int8 tensors (if any) back in ``state["teacher"]`` as float32."""
    packed = state.get("teacher_int8")
    if not packed:
        return state
    weights = dict(state["teacher"])
    for name, part in packed.items():
        q, scale = part["q"], part["scale"].float()
        weights[name] = (q.float().reshape(q.shape[0], -1) * scale[:, None]).reshape(q.shape)
    return {**state, "teacher": weights, "teacher_int8": {}}


def export_teacher(state: dict[str, Any], out: str | os.PathLike[str], *, note: str = "",
                   precision: str = "fp16") -> Path:  # fmt: skip
    """Write the teacher of a meta-training checkpoint dict as a small file: fp16 weights (or,
    with ``precision="int8"``, int8 with a scale per row for the tensors of at least
    :data:`INT8_MIN_ELEMENTS` elements), its config, its meta config, step and ``extra``; no
    optimiser state, no history.

    Args:
        state: A checkpoint dict (:func:`gtn.meta.load_meta_checkpoint`).
        out: The file to write (atomically).
        note: Recorded as ``extra["export_note"]`` (say, the command that trained it).
        precision: ``fp16`` or ``int8``.

    Returns:
        The written path.

    Raises:
        ValueError: For an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"export precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    weights, packed = {}, {}
    for name, v in state["teacher"].items():
        if precision == "int8" and v.is_floating_point() and v.dim() >= 2 \
                and v.numel() >= INT8_MIN_ELEMENTS:  # fmt: skip
            packed[name] = _quantize(v)
        else:
            weights[name] = v.half() if v.is_floating_point() else v
    history = state.get("history") or []
    extra = {**state.get("extra", {}), "export_note": note, "export_precision": precision,
             "final_meta_batch_accuracy": _tail_accuracy(history)}  # fmt: skip
    slim = {
        "format_version": state["format_version"], "kind": state["kind"],
        "teacher_config": state["teacher_config"], "meta_config": state["meta_config"],
        "teacher": weights, "teacher_int8": packed, "optimizer": {}, "scheduler": {},
        "step": state["step"], "history": [], "extra": extra, "exported": True,
    }  # fmt: skip
    return atomic_save(slim, out)


def _tail_accuracy(history: list[dict[str, Any]], last: int = 20) -> float | None:
    """Mean learner accuracy on real meta-batches over the last ``last`` outer steps."""
    values = [float(r["accuracy"]) for r in history[-last:] if "accuracy" in r]
    return sum(values) / len(values) if values else None


def describe() -> list[list[str]]:
    """Rows of ``metaqnn gtn list``: name, dataset, size, sha256 (short), about, command."""
    rows = []
    for name, entry in PRETRAINED.items():
        size = f"{entry.path.stat().st_size / 1e6:.1f} MB" if entry.path.is_file() else "missing"
        rows.append([name, entry.dataset, size, entry.sha256[:12], entry.about, entry.command])
    return rows


def is_exported(state: dict[str, Any]) -> bool:
    """Whether a checkpoint dict is an exported (weights-only) teacher."""
    return bool(state.get("exported"))
