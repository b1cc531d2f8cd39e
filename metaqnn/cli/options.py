"""What every command shares, and no command: the help formatter, the data, device and net
options, their parsing into values, and comma-separated lists (``--seeds 0,1,2``, ``--attacks
fgsm,bim``). Each bad value raises a :class:`~metaqnn.errors.ConfigError` that names the
option and the value.

This module imports no command module, so every command can import it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from envs.layers import Architecture, Conv, Softmax
from envs.space import SearchSpace
from metaqnn.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from metaqnn.core.data import Dataset
    from metaqnn.core.limits import ArchitectureLimits
    from metaqnn.core.nets import NetConfig

#: Exit status of an error the user can fix (a one-line message on stderr).
EXIT_USER_ERROR = 2
#: Exit status of a run that went wrong (e.g. a diverged training).
EXIT_FAILED_RUN = 1


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every parser's help formatter: appends ``(default: X)`` to an option's help, unless X is
    None, False or empty (nothing worth showing) or the help names it itself (``%(default)``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or default is False or (isinstance(default, str) and not default):
            return action.help or ""
        return super()._get_help_string(action) or ""


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


def add_data_options(
    p: argparse.ArgumentParser,
    default_dataset: str | None = "digits",
    *,
    seed_help: str = "seed of split, init and shuffling",
    checkpoint_split: bool = False,
) -> None:
    """``--dataset`` (unless ``default_dataset`` is None), ``--data-root``, ``--download``,
    ``--val-size``, ``--device`` and ``--seed`` (its help: ``seed_help``). With
    ``checkpoint_split``, ``--val-size``'s help says it is for a checkpoint that records no
    split (:func:`metaqnn.cli.evaluate.checkpoint_data`)."""
    if default_dataset is not None:
        p.add_argument("--dataset", default=default_dataset, help="dataset name (see `datasets`)")
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--download", action="store_true", help="let torchvision download files")
    held_out = "validation images held out of training"
    if checkpoint_split:
        held_out += ", if the checkpoint records no split"
    p.add_argument("--val-size", type=int, default=None,
                   help=f"{held_out} (0: none; default: the dataset's)")  # fmt: skip
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0, help=seed_help)


def add_net_options(p: argparse.ArgumentParser) -> None:
    """How architectures become modules: ``--norm``, ``--activation``, ``--init``,
    ``--no-dropout``."""
    from metaqnn.core.nets import ACTIVATIONS, INITS, NORMS

    p.add_argument("--norm", default="batch", help=f"normalisation: {', '.join(sorted(NORMS))}")
    p.add_argument(
        "--activation", default="relu", help=f"activation: {', '.join(sorted(ACTIVATIONS))}"
    )
    p.add_argument("--init", default="xavier", help=f"weight init: {', '.join(sorted(INITS))}")
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


def _count(text: str) -> int:
    """A whole number of at least 1, written ``500000000``, ``500_000_000`` or ``5e8``."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        value = int(number) if math.isfinite(number) and number == int(number) else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1 (5e8)")
    return value


def add_limit_options(p: argparse.ArgumentParser) -> None:
    """``--max-depth``, ``--max-params``, ``--max-activations`` and ``--max-flops``: the size
    limits an architecture is checked against before anything is built (defaults:
    :class:`~metaqnn.core.limits.ArchitectureLimits`)."""
    from metaqnn.core.limits import DEFAULT_LIMITS as d

    g = p.add_argument_group("architecture limits (checked before anything is built)")
    g.add_argument("--max-depth", type=_count, default=d.max_depth,
                   help="most layers before SM")  # fmt: skip
    g.add_argument("--max-params", type=_count, default=d.max_params,
                   help="most parameters (default: %(default).0e)")  # fmt: skip
    g.add_argument("--max-activations", type=_count, default=d.max_activations,
                   help="most layer outputs per image (default: %(default).0e)")  # fmt: skip
    g.add_argument("--max-flops", type=_count, default=d.max_flops,
                   help="most FLOPs per image (default: %(default).0e)")  # fmt: skip


def limits_of(args: argparse.Namespace) -> ArchitectureLimits:
    """The :class:`~metaqnn.core.limits.ArchitectureLimits` of :func:`add_limit_options`'
    values."""
    from metaqnn.core.limits import ArchitectureLimits

    return ArchitectureLimits(
        max_depth=args.max_depth,
        max_params=args.max_params,
        max_activations=args.max_activations,
        max_flops=args.max_flops,
    )


def check_size(arch: Architecture, dataset: str, limits: ArchitectureLimits) -> None:
    """Check ``arch`` on ``dataset``'s image shape against ``limits``, by arithmetic alone (an
    unknown dataset is left to the data loader to report).

    Raises:
        ArchitectureError: If it cannot be built on those images or is over a limit, naming
            the layer.
    """
    from metaqnn.core.datasets import DATASETS
    from metaqnn.core.nets import architecture_cost

    spec = DATASETS.get(dataset)
    if spec is not None:
        architecture_cost(
            arch, in_channels=spec.channels, input_size=spec.image_size, limits=limits
        )


def check_space_size(space: SearchSpace, limits: ArchitectureLimits) -> None:
    """Refuse a search space whose largest network, ``max_depth`` convs of its most filters
    and largest kernel that fits, is over ``limits``."""
    from metaqnn.core.limits import ArchitectureLimitError
    from metaqnn.core.nets import architecture_cost

    kernels = [k for k in space.conv_kernels if k < space.input_size]
    if not kernels:
        return
    conv = Conv(max(space.conv_filters), max(kernels), min(space.conv_strides))
    arch = Architecture((conv,) * space.max_depth + (Softmax(space.num_classes),))
    try:
        architecture_cost(
            arch, in_channels=space.input_channels, input_size=space.input_size, limits=limits
        )
    except ArchitectureLimitError as exc:
        raise ConfigError(
            f"search space {space.name!r} allows {space.max_depth} x {conv} on "
            f"{space.input_channels}x{space.input_size}x{space.input_size} images: {exc}"
        ) from None


def refuse_on_resume(args: argparse.Namespace, fixed: Iterable[str], *, kept_in: str,
                     changeable: str, hint: str = "start a new run") -> None:  # fmt: skip
    """One line naming the ``fixed`` options written on a ``--resume`` command line (the run
    keeps its own, recorded in ``kept_in``); ``changeable`` lists what a resume does apply.

    Raises:
        ConfigError: If any of ``fixed`` was given.
    """
    given = sorted(set(getattr(args, "given_options", ())) & set(fixed))
    if given:
        names = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(
            f"--resume {args.resume} keeps the run's own {names} (recorded in "
            f"{kept_in}); drop them, or {hint}. A resume can change {changeable}"
        )
