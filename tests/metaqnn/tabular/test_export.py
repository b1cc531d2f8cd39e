"""``export_table`` and ``load_table``: one verified file, refused when unfinished, and a
corrupt or edited file fails with one line naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs.bench import BenchTableError, load_table, payload_sha256
from metaqnn.errors import ConfigError
from metaqnn.tabular.build import build_table
from metaqnn.tabular.export import export_table
from metaqnn.tabular.store import BenchStore, RunRow
from tests.metaqnn.tabular.conftest import TINY_SPACE


@pytest.fixture
def built(tmp_path, tiny_job):
    """A finished tiny build folder (2 architectures x 1 seed, trained)."""
    run_dir = tmp_path / "build"
    build_table(run_dir, TINY_SPACE, tiny_job, (0,), progress=False, command="metaqnn bench x")
    return run_dir


def test_export_and_load_round_trip(built, tmp_path):
    summary = export_table(built, tmp_path / "t.npz")
    assert summary.complete and summary.runs_done == summary.runs_total == 2
    assert 0 < summary.bytes < 10 * 1024 * 1024
    table = load_table(tmp_path / "t.npz")
    store = BenchStore.read(built)
    try:
        runs = {(r.idx, r.seed): r for r in store.runs()}
        archs = store.architectures()
    finally:
        store.close()
    assert [str(a) for a in table.architectures] == [a for _, a, _, _ in archs]
    assert table.arrays["val_accuracy"][1, 0] == runs[(1, 0)].val_accuracy
    assert table.arrays["train_seconds"][0, 0] == runs[(0, 0)].train_seconds
    assert list(table.arrays["parameters"]) == [p for _, _, p, _ in archs]
    assert np.isnan(table.arrays["gtn_reward"]).all()  # no teacher was named
    assert table.complete and table.space == TINY_SPACE
    header = table.header
    assert header["command"] == "metaqnn bench x" and header["recipe"]["name"] == "tiny"
    assert header["counts"]["runs_done"] == 2 and header["seeds"] == [0]
    assert header["versions"]["torch"] and header["machine"]["hosts"]
    with np.load(tmp_path / "t.npz") as z:  # numpy alone reads it, no pickles
        assert json.loads(str(z["header"]))["dataset"] == "digits"
        assert z["val_accuracy"].shape == (2, 1)


def test_an_unfinished_table_is_refused_unless_partial(tmp_path, tiny_job):
    build_table(tmp_path / "b", TINY_SPACE, tiny_job, (0,), max_units=1, progress=False)
    with pytest.raises(ConfigError, match=r"unfinished .1 of 2 runs.*--partial"):
        export_table(tmp_path / "b", tmp_path / "t.npz")
    summary = export_table(tmp_path / "b", tmp_path / "t.npz", partial=True)
    assert not summary.complete
    table = load_table(tmp_path / "t.npz")
    assert not table.complete and np.isnan(table.arrays["val_accuracy"][1, 0])


def test_export_refuses_to_overwrite_and_needs_a_build(built, tmp_path):
    export_table(built, tmp_path / "t.npz")
    with pytest.raises(ConfigError, match="exists; pass --force"):
        export_table(built, tmp_path / "t.npz")
    export_table(built, tmp_path / "t.npz", force=True)
    with pytest.raises(ConfigError, match="no bench build here"):
        export_table(tmp_path / "nothing", tmp_path / "u.npz")


def test_an_edited_file_fails_its_checksum_in_one_line(built, tmp_path):
    path = tmp_path / "t.npz"
    export_table(built, path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["val_accuracy"] = arrays["val_accuracy"] + 0.01  # a better table, by hand
    edited = tmp_path / "edited.npz"
    np.savez_compressed(edited, **arrays)
    with pytest.raises(BenchTableError) as err:
        load_table(edited)
    assert str(edited) in str(err.value) and "checksum" in str(err.value)
    assert "\n" not in str(err.value)
    arrays["sha256"] = np.array(payload_sha256(arrays))  # re-signed: loads again
    np.savez_compressed(edited, **arrays)
    assert load_table(edited).arrays["val_accuracy"][0, 0] == arrays["val_accuracy"][0, 0]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_a_corrupt_or_missing_file_is_one_line_naming_it(built, tmp_path, damage):
    path = tmp_path / "t.npz"
    export_table(built, path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(data[:100] + bytes(200) + data[300:])
    else:
        path.unlink()
    with pytest.raises(BenchTableError) as err:
        load_table(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_diverged_run_scores_chance(tmp_path, tiny_job):
    build_table(tmp_path, TINY_SPACE, tiny_job, (0,), max_units=0, progress=False)
    store = BenchStore.read(tmp_path)
    try:
        store.record_run(RunRow(0, 0, 0.1, 0.1, 1.0, "diverged"))
        store.record_run(RunRow(1, 0, 0.5, 0.4, 1.0, "ok"))
    finally:
        store.close()
    export_table(tmp_path, tmp_path / "t.npz")
    assert load_table(tmp_path / "t.npz").header["counts"]["runs_diverged"] == 1
