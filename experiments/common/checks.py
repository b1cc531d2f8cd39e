"""Checks the experiments' ``Config.__post_init__`` methods share.

Each raises :class:`metaqnn.errors.ConfigError` (a ``ValueError``) with a one-line message
that names the field and its bad value, e.g. ``seeds=[1, 1] must be distinct and not empty``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from metaqnn.errors import ConfigError


def known_choices(
    name: str, values: Sequence[str], choices: Collection[str], *, allow_empty: bool = False
) -> None:
    """Check that every one of ``values`` (the field ``name``) is one of ``choices`` and, unless
    ``allow_empty``, that there is at least one.

    Raises:
        ConfigError: Naming the field, its values and the unknown ones, e.g.
            ``agents=['qlearning', 'sac']: unknown ['sac']; choose from qlearning, random``.
    """
    choose = f"choose from {', '.join(choices)}"
    unknown = [v for v in values if v not in choices]
    if unknown:
        raise ConfigError(f"{name}={list(values)!r}: unknown {unknown!r}; {choose}")
    if not values and not allow_empty:
        raise ConfigError(f"{name}=[]: give at least one; {choose}")


def distinct_seeds(seeds: Sequence[int], name: str = "seeds") -> None:
    """Check that ``seeds`` (the field ``name``) holds at least one seed and none twice.

    Raises:
        ConfigError: ``seeds=[1, 1] must be distinct and not empty``.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{name}={list(seeds)!r} must be distinct and not empty")


def at_least(config: object, names: Iterable[str], least: int = 1) -> None:
    """Check that each integer field of ``config`` named in ``names`` is ``least`` or more.

    Raises:
        ConfigError: For the first field below ``least``: ``window=0 must be positive``
            (``least`` 1) or ``test_size=-5 must be >= 0`` (any other ``least``).
    """
    if isinstance(names, str):  # one name, not its letters
        names = (names,)
    bound = "positive" if least == 1 else f">= {least}"
    for name in names:
        value = getattr(config, name)
        if value < least:
            raise ConfigError(f"{name}={value!r} must be {bound}")
