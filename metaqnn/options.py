"""Comma-separated command-line lists (``--seeds 0,1,2``, ``--attacks fgsm,bim``), parsed with a
:class:`~metaqnn.errors.ConfigError` that names the option and the bad value."""

from __future__ import annotations

from typing import Any

from metaqnn.errors import ConfigError


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
