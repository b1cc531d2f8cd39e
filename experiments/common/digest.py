"""The digest of an experiment's config, which names its scratch folder and resume memo."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from typing import Any

#: ``dataclasses.field(metadata=REPORT_ONLY)`` marks a config field that changes only what is
#: reported from the units, never a unit: :func:`config_digest` leaves it out, so setting it
#: reuses the same scratch folder and memo.
REPORT_ONLY = types.MappingProxyType({"digest": False})


def config_digest(config: Any) -> str:
    """A short hash of a config's values (names resumable caches), without its
    :data:`REPORT_ONLY` fields."""
    values = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if not f.metadata.get("digest", True):
            values.pop(f.name)
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]
