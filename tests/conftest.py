"""Shared fixtures: where the real test data lives, and a private dataset cache per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def metaqnn_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``METAQNN_CACHE`` at a temporary folder so that tests never write to the home dir."""
    cache = tmp_path_factory.mktemp("metaqnn-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METAQNN_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session", autouse=True)
def metaqnn_data() -> Iterator[None]:
    """Set ``METAQNN_DATA`` to ``../shared/data`` when it is unset and that folder exists, so
    that commands run without ``--data-root`` (as a user runs them) find the real data under
    plain ``make test`` as they do under ``.ci/run``, which exports it."""
    default = REPO_ROOT.parent / "shared" / "data"
    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("METAQNN_DATA") and default.is_dir():
            patch.setenv("METAQNN_DATA", str(default))
        yield


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """The real (read-only) data root: ``$METAQNN_DATA``, else ``../shared/data`` next to the
    repository. Skips the test when the folder is absent."""
    root = Path(os.environ.get("METAQNN_DATA") or REPO_ROOT.parent / "shared" / "data")
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root}; set METAQNN_DATA to a data root")
    return root
