"""What every command shares, and no command: the data, device and net options, their parsing
into values, and comma-separated lists (``--seeds 0,1,2``, ``--attacks fgsm,bim``). Each bad
value raises a :class:`~metaqnn.errors.ConfigError` that names the option and the value.

This module imports no command module, so every command can import it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from envs.layers import Architecture
from envs.space import SearchSpace, get_space
from metaqnn.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from metaqnn.core.data import Dataset
    from metaqnn.core.nets import NetConfig

#: Exit status of an error the user can fix (a one-line message on stderr).
EXIT_USER_ERROR = 2
#: Exit status of a run that went wrong (e.g. a diverged training).
EXIT_FAILED_RUN = 1


def ints(text: str, option: str) -> tuple[int, ...]:
    """The integers of ``text`` (at least one); ``option`` names the flag in errors."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a comma-separated list of integers") from None
    if not values:
        raise ConfigError(f"{option}: no values in {text!r}")
    return values


def floats(text: str, option: str) -> tuple[float, ...]:
    """The numbers of ``text`` (at least one); ``option`` names the flag in errors."""
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise ConfigError(f"{option}: no values in {text!r}")
    return values


def names(text: str | None, registry: dict[str, Any], what: str) -> tuple[str, ...] | None:
    """The keys of ``registry`` listed in ``text``, each checked (None stays None); ``what``
    names the kind of key in errors."""
    if text is None:
        return None
    listed = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in listed:
        if name not in registry:
            raise ConfigError(f"unknown {what} {name!r}; choose from {', '.join(registry)}")
    return listed


def space_of(name: str, **overrides: object) -> SearchSpace:
    """A search-space preset by name; an unknown name is a one-line error."""
    try:
        return get_space(name, **overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_architecture(text: str) -> Architecture:
    """An architecture from its string form (``[C(64,3,1), SM(10)]``)."""
    return Architecture.parse(text)


def torch_device(name: str) -> torch.device:
    """``--device`` as a torch device; a malformed or unavailable one is a one-line error."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"bad --device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: CUDA is not available on this machine")
    return device


def add_data_options(p: argparse.ArgumentParser, default_dataset: str | None = "digits") -> None:
    """``--dataset`` (unless ``default_dataset`` is None), ``--data-root``, ``--download``,
    ``--val-size``, ``--device`` and ``--seed``."""
    if default_dataset is not None:
        p.add_argument("--dataset", default=default_dataset, help="dataset name (see `datasets`)")
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--download", action="store_true", help="let torchvision download files")
    p.add_argument("--val-size", type=int, default=None, help="validation images held out")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0, help="seed of split, init and shuffling")


def add_net_options(p: argparse.ArgumentParser) -> None:
    """How architectures become modules: ``--norm``, ``--activation``, ``--init``,
    ``--no-dropout``."""
    from metaqnn.core.nets import ACTIVATIONS, INITS, NORMS

    p.add_argument("--norm", default="batch", help=f"normalisation: {', '.join(sorted(NORMS))}")
    p.add_argument("--activation", default="relu", help=", ".join(sorted(ACTIVATIONS)))
    p.add_argument("--init", default="xavier", help=", ".join(sorted(INITS)))
    p.add_argument("--no-dropout", action="store_true", help="disable MetaQNN's dropout")


def net_config_of(args: argparse.Namespace) -> NetConfig:
    """The :class:`~metaqnn.core.nets.NetConfig` of :func:`add_net_options`' values."""
    from metaqnn.core.nets import NetConfig

    return NetConfig(
        norm=args.norm, activation=args.activation, dropout=not args.no_dropout, init=args.init
    )


def load_data(args: argparse.Namespace, name: str | None = None) -> Dataset:
    """The dataset of :func:`add_data_options`' values (``name`` overrides ``--dataset``)."""
    from metaqnn.core.data import load_dataset

    return load_dataset(
        name or args.dataset,
        root=args.data_root,
        val_size=args.val_size,
        device=torch_device(args.device),
        seed=args.seed,
        download=args.download,
    )
