"""Architectures of a search space that experiments score: the fixed sample every teacher of a
space is compared on (:data:`ARCH_SEED`), a meta-trained space run loaded with that sample,
the first distinct draws of a space's sampler, and the families an architecture belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.layers import Architecture, FullyConnected, GlobalAvgPool, Pool, Softmax
from envs.space import SearchSpace, get_space
from gtn.meta import load_meta_checkpoint, teacher_from_checkpoint
from gtn.teacher import SyntheticTeacher
from metaqnn.core.data import Dataset, load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.errors import ConfigError

#: Seed of the architecture sample: apart from meta-training's.
ARCH_SEED = 20_261_123


def families(arch: Architecture) -> list[str]:
    """The families an architecture belongs to: GAP, several pools, FC, deep (6+ layers),
    shallow (at most 2 layers), else other."""
    layers = [ly for ly in arch.layers if not isinstance(ly, Softmax)]
    tags = []
    if any(isinstance(ly, GlobalAvgPool) for ly in layers):
        tags.append("GAP")
    if sum(isinstance(ly, Pool) for ly in layers) >= 2:
        tags.append("several pools")
    if any(isinstance(ly, FullyConnected) for ly in layers):
        tags.append("FC")
    if len(layers) >= 6:
        tags.append("deep")
    if len(layers) <= 2:
        tags.append("shallow")
    return tags or ["other"]


def sample_architectures(space: SearchSpace, count: int, seed: int) -> list[Architecture]:
    """The first ``count`` distinct architectures drawn by ``space``'s uniform sampler.

    Raises:
        ConfigError: If 100 draws per wanted architecture do not give ``count`` distinct ones.
    """
    rng = np.random.default_rng(seed)
    seen: dict[str, Architecture] = {}
    for _ in range(100 * count):
        arch = space.sample(rng)
        seen.setdefault(str(arch), arch)
        if len(seen) == count:
            return list(seen.values())
    raise ConfigError(f"the space gave only {len(seen)} distinct architectures, not {count}")


@dataclass(frozen=True)
class SpaceRun:
    """A teacher run meta-trained across a search space, loaded for scoring."""

    state: dict[str, Any]
    """Its checkpoint."""
    data: Dataset
    """Its dataset (split as in meta-training)."""
    teacher: SyntheticTeacher
    """Its teacher."""
    net: NetConfig
    """The learners' net config (the run's)."""
    divisor: int
    """Width divisor of the sampled space."""
    archs: list[Architecture]
    """The architectures sampled with :data:`ARCH_SEED`."""


def load_space_run(
    run: str | Path,
    count: int,
    *,
    data_root: str | None = None,
    device: torch.device | str = "cpu",
    width_divisor: int | None = None,
) -> SpaceRun:
    """The run's checkpoint, data, teacher and net config, and ``count`` architectures of its
    space (widths divided by ``width_divisor``, default the run's) drawn with
    :data:`ARCH_SEED`: the same architectures for every teacher of that space."""
    state = load_meta_checkpoint(run)
    extra = state["extra"]
    data = load_dataset(extra["dataset"], root=data_root, val_size=extra["val_size"],
                        seed=extra["seed"], device=device)  # fmt: skip
    divisor = width_divisor or int(extra.get("width_divisor", 1))
    space = get_space(extra["space"]).scale_widths(divisor)
    rng = np.random.default_rng(ARCH_SEED)
    return SpaceRun(
        state=state, data=data, teacher=teacher_from_checkpoint(state, device),
        net=NetConfig(**extra["net_config"]), divisor=divisor,
        archs=[space.sample(rng) for _ in range(count)],
    )  # fmt: skip
