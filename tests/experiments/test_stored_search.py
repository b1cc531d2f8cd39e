"""``experiments/artifacts/stored_search.py``: the analysis scripts read an archived run's
search database whether it is kept plain or gzipped, with the same models."""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import pytest

from metaqnn.errors import CheckpointError

ARTIFACTS = Path(__file__).resolve().parents[2] / "experiments" / "artifacts"
PLAIN = ARTIFACTS / "design_mnist" / "search.db"


@pytest.fixture
def stored_search(monkeypatch):
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    import stored_search

    yield stored_search
    sys.modules.pop("stored_search", None)


def _ok(store) -> list[tuple[int, str, float]]:
    rows = [(m.id, m.architecture, m.reward) for m in store.models() if m.status == "ok"]
    store.close()
    return rows


def test_a_gzipped_database_opens_with_the_same_models(stored_search, tmp_path):
    run = tmp_path / "design_x"
    run.mkdir()
    with PLAIN.open("rb") as src, gzip.open(run / "search.db.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert stored_search.find_db(run) == run / "search.db.gz"
    plain = shutil.copyfile(PLAIN, tmp_path / "search.db")  # SQLite may add -wal/-shm files
    gz = _ok(stored_search.open_store(run))
    assert gz == _ok(stored_search.open_store(plain)) and len(gz) == 991  # its README's count
    assert not (run / "search.db").exists()  # decompressed elsewhere, the archive untouched


def test_a_run_folder_is_found_and_named_and_a_missing_one_is_an_error(stored_search, tmp_path):
    run = tmp_path / "design_y"
    (run / "search").mkdir(parents=True)
    shutil.copyfile(PLAIN, run / "search" / "search.db")
    assert stored_search.find_db(run) == run / "search" / "search.db"
    assert stored_search.run_name(run / "search" / "search.db") == "design_y"
    assert stored_search.run_name(run) == "design_y"
    assert stored_search.find_db(tmp_path) is None
    with pytest.raises(CheckpointError, match="no search store"):
        stored_search.open_store(tmp_path)
