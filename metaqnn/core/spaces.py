"""Search-space presets by name for the command line and the design job: an unknown name or a
space for other images is a one-line :class:`~metaqnn.errors.ConfigError`. Imports no torch."""

from __future__ import annotations

from envs.space import SearchSpace, get_space
from metaqnn.errors import ConfigError


def space_of(name: str, **overrides: object) -> SearchSpace:
    """A search-space preset by name; an unknown name is a one-line error."""
    try:
        return get_space(name, **overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def space_for(name: str, dataset: str) -> SearchSpace:
    """The preset ``name``, refused when its images or classes are not ``dataset``'s (the
    ``mnist`` space's rules are for 28x28 images, not ``digits``' 8x8)."""
    from metaqnn.core.datasets import DATASETS

    space, spec = space_of(name), DATASETS.get(dataset)
    if spec is not None and (space.input_channels, space.input_size, space.num_classes) != (
        spec.channels, spec.image_size, spec.num_classes
    ):  # fmt: skip
        raise ConfigError(
            f"--space {name} is for {space.input_channels}x{space.input_size}x"
            f"{space.input_size} images and {space.num_classes} classes, but {dataset} has "
            f"{'x'.join(map(str, spec.input_shape))} images and {spec.num_classes} classes: "
            f"use --space {spec.preset} or another preset of that shape"
        )
    return space
