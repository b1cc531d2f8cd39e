"""Layer specifications and the `Architecture` value type, with a string form that round-trips.

The grammar is MetaQNN's::

    [C(64,3,1), P(2,2), FC(512), GAP, SM(10)]

``C(filters, kernel, stride)`` is a SAME-padded convolution, ``P(size, stride)`` a max pool,
``FC(width)`` a fully connected layer, ``GAP`` global average pooling and ``SM(classes)`` the
softmax classifier that ends every architecture. This module knows nothing of the search-space
rules (see :mod:`envs.space`); it only checks that a string is well formed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, fields


class ArchitectureError(ValueError):
    """Base class of every error about an architecture (parse or rule)."""


class ArchitectureParseError(ArchitectureError):
    """A malformed architecture string.

    Attributes:
        token: The offending token, as written.
        position: Character offset of the token in the string (0-based).
    """

    def __init__(self, message: str, token: str, position: int) -> None:
        super().__init__(message)
        self.token = token
        self.position = position


@dataclass(frozen=True)
class Conv:
    """``C(filters, kernel, stride)``: SAME-padded convolution."""

    filters: int
    kernel: int
    stride: int = 1

    def __str__(self) -> str:
        return f"C({self.filters},{self.kernel},{self.stride})"


@dataclass(frozen=True)
class Pool:
    """``P(size, stride)``: max pooling with VALID padding (PyTorch's floor mode)."""

    size: int
    stride: int

    def __str__(self) -> str:
        return f"P({self.size},{self.stride})"


@dataclass(frozen=True)
class FullyConnected:
    """``FC(width)``: fully connected layer."""

    width: int

    def __str__(self) -> str:
        return f"FC({self.width})"


@dataclass(frozen=True)
class GlobalAvgPool:
    """``GAP``: global average pooling over the spatial dimensions."""

    def __str__(self) -> str:
        return "GAP"


@dataclass(frozen=True)
class Softmax:
    """``SM(classes)``: the linear classifier (softmax) that terminates an architecture."""

    classes: int

    def __str__(self) -> str:
        return f"SM({self.classes})"


Layer = Conv | Pool | FullyConnected | GlobalAvgPool | Softmax

#: Token name -> layer class. The order of a class's dataclass fields is the argument order.
LAYER_TOKENS: dict[str, type] = {
    "C": Conv,
    "P": Pool,
    "FC": FullyConnected,
    "GAP": GlobalAvgPool,
    "SM": Softmax,
}

#: Layer class -> the short type name used in states, graphs and tables.
LAYER_KINDS: dict[type, str] = {
    Conv: "conv",
    Pool: "pool",
    FullyConnected: "fc",
    GlobalAvgPool: "gap",
    Softmax: "softmax",
}

_EXPECTED = "C(filters,kernel,stride), P(size,stride), FC(width), GAP or SM(classes)"
_ITEM = re.compile(r"^([A-Za-z]+)\s*(?:\(([^()]*)\))?$")
#: An argument: ASCII digits only (``str.isdigit`` also takes ``６４`` and ``²``), at most 18 of
#: them, so that ``int`` never meets a number too long to convert.
_ARGUMENT = re.compile(r"[0-9]{1,18}")


def layer_kind(layer: Layer | None) -> str:
    """The short type name of a layer: ``conv``, ``pool``, ``fc``, ``gap``, ``softmax``.

    ``None`` (the empty network) is ``start``.
    """
    return "start" if layer is None else LAYER_KINDS[type(layer)]


def parse_layer(token: str, position: int = 0) -> Layer:
    """Parse one layer token such as ``C(64,3,1)``.

    Args:
        token: The token text, without surrounding whitespace.
        position: Its offset in the enclosing string, for the error message.

    Raises:
        ArchitectureParseError: Naming the token, its position and what was expected.
    """
    match = _ITEM.match(token)
    if match is None:
        raise ArchitectureParseError(
            f"bad token {token!r} at position {position}: expected {_EXPECTED}", token, position
        )
    name, args = match.group(1), match.group(2)
    cls = LAYER_TOKENS.get(name)
    if cls is None:
        raise ArchitectureParseError(
            f"unknown layer {name!r} in token {token!r} at position {position}: "
            f"expected {_EXPECTED}",
            token,
            position,
        )
    names = [f.name for f in fields(cls)]
    required = [f.name for f in fields(cls) if f.default is MISSING]
    signature = f"{name}({','.join(names)})" if names else name
    if (args is None) != (not names):
        raise ArchitectureParseError(
            f"token {token!r} at position {position}: expected {signature}", token, position
        )
    values: list[int] = []
    for raw in args.split(",") if args is not None else []:
        raw = raw.strip()
        if _ARGUMENT.fullmatch(raw) is None or int(raw) <= 0:
            raise ArchitectureParseError(
                f"bad argument {raw!r} in token {token!r} at position {position}: "
                "arguments are positive integers of at most 18 ASCII digits (0-9)",
                token,
                position,
            )
        values.append(int(raw))
    # Arguments with a default (the conv stride) may be left out.
    if not len(required) <= len(values) <= len(names):
        raise ArchitectureParseError(
            f"token {token!r} at position {position}: expected {signature}", token, position
        )
    return cls(*values)


def _split_items(text: str) -> Iterator[tuple[str, int]]:
    """Split the inside of ``[...]`` at top-level commas, yielding (item, offset)."""
    depth, start = 0, 1
    for i in range(1, len(text) - 1):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            yield text[start:i], start
            start = i + 1
    yield text[start : len(text) - 1], start


@dataclass(frozen=True)
class Architecture:
    """An immutable, hashable CNN architecture: a tuple of layers ending in ``SM(classes)``.

    ``str(arch)`` gives the canonical form ``[C(64,3,1), P(2,2), FC(512), SM(10)]`` and
    ``Architecture.parse(str(arch)) == arch``.

    Attributes:
        layers: The layers in order; the last (and only the last) is a :class:`Softmax`.
    """

    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise ArchitectureError("an architecture needs at least its SM(classes) layer")
        for i, layer in enumerate(layers):
            if type(layer) not in LAYER_KINDS:
                raise ArchitectureError(f"layer {i} is {layer!r}, not a layer spec")
        if not isinstance(layers[-1], Softmax):
            raise ArchitectureError(f"architecture must end with SM(classes), not {layers[-1]}")
        for i, layer in enumerate(layers[:-1]):
            if isinstance(layer, Softmax):
                raise ArchitectureError(
                    f"{layer} at layer {i} is not last: SM ends an architecture"
                )

    @classmethod
    def parse(cls, text: str) -> Architecture:
        """Parse ``[C(64,3,1), P(2,2), FC(512), SM(10)]`` (whitespace is free).

        Raises:
            ArchitectureParseError: Naming the bad token and its character position.
            ArchitectureError: For a well-formed string that is not an architecture
                (no final ``SM``, ``SM`` in the middle).
        """
        if not isinstance(text, str):
            raise ArchitectureError(f"expected an architecture string, got {type(text).__name__}")
        stripped = text.strip()
        offset = len(text) - len(text.lstrip())
        if not stripped.startswith("["):
            raise ArchitectureParseError(
                f"expected '[' at position {offset} of {text!r}: write [layer, layer, ...]",
                stripped,
                offset,
            )
        if not stripped.endswith("]") or len(stripped) < 2:
            end = offset + len(stripped)
            raise ArchitectureParseError(
                f"expected ']' at position {end} of {text!r}: write [layer, layer, ...]",
                stripped,
                end,
            )
        layers = []
        for item, start in _split_items(stripped):
            token = item.strip()
            position = offset + start + (len(item) - len(item.lstrip()))
            if not token:
                raise ArchitectureParseError(
                    f"empty token at position {position} in {text!r}: expected {_EXPECTED}",
                    token,
                    position,
                )
            layers.append(parse_layer(token, position))
        return cls(tuple(layers))

    @property
    def hidden(self) -> tuple[Layer, ...]:
        """All layers but the final classifier."""
        return self.layers[:-1]

    @property
    def num_classes(self) -> int:
        """Number of classes of the final ``SM`` layer."""
        return self.layers[-1].classes  # type: ignore[union-attr]

    def __str__(self) -> str:
        return "[" + ", ".join(str(layer) for layer in self.layers) + "]"

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)
