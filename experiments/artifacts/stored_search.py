"""Open a stored run's search database read-only, kept plain or gzipped.

The archived design runs under ``experiments/artifacts/`` keep their search database as
``search.db.gz`` (SQLite files shrink about 9x, and the folder has a 30 MB limit); the runs a
test or ``metaqnn report`` reads keep ``search.db``. The analysis scripts beside this file
open either through :func:`open_store`, which decompresses a ``.gz`` into a temporary folder
that lives until the process ends. To resume or report on an archived run, ``gunzip -k
search.db.gz`` in a copy of its folder first.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

from metaqnn.search.store import SearchStore

#: Where a run folder may hold its database, in the order looked for.
CANDIDATES = ("search.db", "search/search.db", "search.db.gz", "search/search.db.gz")

_TEMP: list[tempfile.TemporaryDirectory] = []  # kept alive until the process ends


def find_db(path: Path) -> Path | None:
    """The database of ``path`` (a run folder, a ``search.db`` or a ``search.db.gz``);
    None when a run folder holds none."""
    if not path.is_dir():
        return path
    return next((path / c for c in CANDIDATES if (path / c).is_file()), None)


def run_name(path: Path) -> str:
    """The run folder's name for ``path`` (a run folder, or a database in it or in its
    ``search/``)."""
    run = path if path.is_dir() else path.parent
    return run.parent.name if run.name == "search" else run.name


def open_store(path: Path) -> SearchStore:
    """The store of ``path`` (see :func:`find_db`), opened read-only.

    Raises:
        metaqnn.errors.CheckpointError: If there is no store there or it is damaged.
    """
    db = find_db(path) or path / "search.db"  # SearchStore.open names the missing file
    if db.suffix == ".gz" and db.is_file():
        folder = tempfile.TemporaryDirectory(prefix="stored_search_")
        _TEMP.append(folder)
        plain = Path(folder.name) / "search.db"
        with gzip.open(db, "rb") as src, plain.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        db = plain
    return SearchStore.open(db, readonly=True)
