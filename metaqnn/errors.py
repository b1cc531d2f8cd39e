"""Errors of the metaqnn package. Each names the bad value and what was expected.

The command line turns every :class:`MetaQNNError` (and every
:class:`envs.layers.ArchitectureError`) into a one-line message and a non-zero exit.
"""


class MetaQNNError(Exception):
    """Base class of errors that a user can cause and fix (bad input, missing files)."""


class ConfigError(MetaQNNError, ValueError):
    """A configuration value out of range or of the wrong type."""


class UnknownDatasetError(MetaQNNError, ValueError):
    """A dataset name that is not in the registry."""


class DatasetNotFoundError(MetaQNNError, FileNotFoundError):
    """A known dataset whose files are not under the data root (and cannot be downloaded)."""


class DataFormatError(MetaQNNError, ValueError):
    """Dataset files that exist but do not hold what they should (dtype, shape, magic)."""


class CheckpointError(MetaQNNError, ValueError):
    """A checkpoint that is missing, corrupt, of another format version, or incomplete."""
