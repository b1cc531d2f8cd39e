"""``build_table``: resumable, refuses another build's folder, one owner per folder."""

from __future__ import annotations

import dataclasses
import math

import pytest

from metaqnn.errors import ConfigError
from metaqnn.runlock import RunInUseError, RunLock
from metaqnn.tabular.build import build_table
from metaqnn.tabular.measure import BuildJob
from metaqnn.tabular.recipe import BENCH_RECIPES, get_recipe
from metaqnn.tabular.store import STORE_NAME, BenchStore
from tests.metaqnn.tabular.conftest import TINY_RECIPE, TINY_SPACE


def _finished(run_dir) -> dict[tuple[int, int], float]:
    store = BenchStore.read(run_dir)
    try:
        rows = store._db.execute("SELECT idx, seed, finished FROM runs").fetchall()
    finally:
        store.close()
    return {(i, s): f for i, s, f in rows}


def test_resume_after_interruption_does_not_retrain_finished_rows(tmp_path, tiny_job):
    run_dir = tmp_path / "b"
    first = build_table(run_dir, TINY_SPACE, tiny_job, (0,), max_units=1, progress=False)
    assert (first.architectures, first.runs_done, first.runs_total, first.measured) == (2, 1, 2, 1)
    assert not first.complete and (run_dir / STORE_NAME).is_file()
    before = _finished(run_dir)
    second = build_table(run_dir, TINY_SPACE, tiny_job, (0,), progress=False)
    assert second.measured == 1 and second.complete
    after = _finished(run_dir)
    assert after[(0, 0)] == before[(0, 0)]  # the finished row was not trained again
    third = build_table(run_dir, TINY_SPACE, tiny_job, (0,), progress=False)
    assert third.measured == 0 and third.complete


def test_rows_hold_accuracies_times_and_costs(tmp_path, tiny_job):
    build_table(tmp_path, TINY_SPACE, tiny_job, (0,), progress=False)
    store = BenchStore.read(tmp_path)
    try:
        archs, runs = store.architectures(), store.runs()
    finally:
        store.close()
    assert [a for _, a, _, _ in archs] == ["[C(2,3,1), SM(10)]", "[SM(10)]"]
    assert all(p > 0 and f > 0 for _, _, p, f in archs)
    for row in runs:
        assert 0.0 <= row.val_accuracy <= 1.0 and 0.0 <= row.test_accuracy <= 1.0
        assert row.train_seconds > 0 and row.status == "ok"


def test_a_mismatched_recipe_space_or_seeds_is_refused(tmp_path, tiny_job):
    build_table(tmp_path, TINY_SPACE, tiny_job, (0,), max_units=0, progress=False)
    other = dataclasses.replace(tiny_job, recipe=dataclasses.replace(TINY_RECIPE, epochs=2))
    with pytest.raises(ConfigError, match=r"holds another table .*recipe 'tiny' differs in epochs"):
        build_table(tmp_path, TINY_SPACE, other, (0,), max_units=0)
    with pytest.raises(ConfigError, match="space"):
        build_table(tmp_path, TINY_SPACE.replace(max_depth=2), tiny_job, (0,), max_units=0)
    with pytest.raises(ConfigError, match=r"seeds: stored \[0\], asked \[0, 1\]"):
        build_table(tmp_path, TINY_SPACE, tiny_job, (0, 1), max_units=0)


def test_one_owner_per_folder(tmp_path, tiny_job):
    with RunLock(tmp_path), pytest.raises(RunInUseError, match="in use"):
        build_table(tmp_path, TINY_SPACE, tiny_job, (0,), max_units=0)


@pytest.mark.parametrize(
    "seeds, workers, match",
    [((), 1, "seeds"), ((0, 0), 1, "seeds"), ((-1,), 1, "seeds"), ((0,), 0, "workers")],
)
def test_bad_arguments_are_one_line_errors(tmp_path, tiny_job, seeds, workers, match):
    with pytest.raises(ConfigError, match=match) as err:
        build_table(tmp_path, TINY_SPACE, tiny_job, seeds, workers=workers, max_units=0)
    assert "\n" not in str(err.value)


def test_a_space_that_does_not_fit_the_dataset_is_refused(tmp_path, tiny_job):
    with pytest.raises(ConfigError, match="for 1x28x28 images"):
        build_table(tmp_path, TINY_SPACE.replace(input_size=28), tiny_job, (0,), max_units=0)


def test_a_teacher_of_another_dataset_leaves_the_gtn_column_empty_and_says_why(tmp_path):
    job = BuildJob("digits", TINY_RECIPE, "mnist")
    summary = build_table(tmp_path, TINY_SPACE, job, (0,), max_units=0, progress=False)
    assert "teaches 'mnist', the table is on 'digits'" in summary.gtn_note


@pytest.mark.slow
def test_the_gtn_column_is_scored_by_a_shipped_teacher(tmp_path):
    job = BuildJob("digits", TINY_RECIPE, "digits")
    summary = build_table(tmp_path, TINY_SPACE, job, (0,), progress=False)
    assert summary.gtn_done == 2 and not summary.gtn_note
    store = BenchStore.read(tmp_path)
    try:
        rewards = [g.reward for g in store.gtn_rows()]
    finally:
        store.close()
    assert all(0.0 <= r <= 1.0 for r in rewards)


def test_recipes_are_registered_and_checked():
    assert get_recipe("short") is BENCH_RECIPES["short"]
    with pytest.raises(ConfigError, match="unknown bench recipe 'long'"):
        get_recipe("long")
    with pytest.raises(ConfigError, match="train_size=0"):
        dataclasses.replace(TINY_RECIPE, train_size=0)
    config = BENCH_RECIPES["short"].train_config(1)
    assert (config.epochs, config.seed, config.max_restarts) == (1, 1, 0)
    assert not math.isnan(config.lr)
