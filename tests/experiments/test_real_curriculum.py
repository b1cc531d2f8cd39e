"""``python -m experiments real_curriculum`` and ``python -m experiments gtn_space_table`` on a
tiny digits GTN run (their quick modes, with a teacher of their own, run in ``test_quick``)."""

import dataclasses
import json

import pytest

from experiments import gtn_space_table, real_curriculum
from experiments.common.architectures import load_space_run
from experiments.harness import main
from metaqnn.teacher.run import TeacherRun, train_teacher

TINY = TeacherRun(inner_steps=2, inner_batch=20, generator_hidden=32, noise_dim=8, meta_batch=32,
                  eval_archs=0, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("gtn") / "run"
    train_teacher(dataclasses.replace(TINY, outer_steps=1, logdir=str(run)))
    return run


def _main(module, tmp_path, *args: str) -> int:
    argv = ["--no-progress", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"),
            *args]  # fmt: skip
    return main(module.NAME, module.Config, module.run, argv, module.__doc__)


def _results(tmp_path) -> tuple[dict, str]:
    out = tmp_path / "out"
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def test_space_table_quick_run_scores_the_same_architectures(tmp_path, run):
    assert _main(gtn_space_table, tmp_path, "--quick", "--set", f"teacher={run}") == 0
    result, markdown = _results(tmp_path)
    archs = [str(a) for a in load_space_run(run, 3).archs]
    assert [r["architecture"] for r in result["rows"]] == archs
    assert all(0.0 <= r["gtn"] <= 1.0 and 0.0 <= r["real"] <= 1.0 for r in result["rows"])
    assert result["summary"]["below_20pct"] == sum(r["gtn"] < 0.2 for r in result["rows"])
    assert result["summary"]["meta"]["inner_batch"] == TINY.inner_batch
    assert "| GTN 2 steps of 20 |" in markdown
    assert (tmp_path / "out" / "gtn_space.png").read_bytes()[:4] == b"\x89PNG"


def test_space_table_reuses_the_real_accuracies_of_an_earlier_table(tmp_path, run):
    first = tmp_path / "first"
    assert _main(gtn_space_table, first, "--quick", "--set", f"teacher={run}") == 0
    earlier, _ = _results(first)
    again = tmp_path / "again"
    earlier_file = first / "out" / "results.json"
    args = ["--quick", "--set", f"teacher={run}", "--set", f"real_from={earlier_file}"]
    assert _main(gtn_space_table, again, *args) == 0
    result, _ = _results(again)
    assert [(r["real"], r["real_s"]) for r in result["rows"]] == [
        (r["real"], r["real_s"]) for r in earlier["rows"]
    ]


def test_quick_run_scores_the_generator_and_every_real_curriculum(tmp_path, run, capsys):
    args = ["--quick", "--set", f"teacher={run}", "--set", 'select=["random", "kmeans"]',
            "--set", "seeds=[0, 1]"]  # fmt: skip
    assert _main(real_curriculum, tmp_path, *args) == 0
    result, markdown = _results(tmp_path)
    rows = result["rows"]
    names = [r["curriculum"] for r in rows]
    assert names == ["generator", "real random 0", "real random 1", "real kmeans 0",
                     "real kmeans 1"]  # fmt: skip
    for r in rows:
        assert len(r["accuracy"]) == 3 and all(0.0 <= a <= 1.0 for a in r["accuracy"])
        assert r["q1"] <= r["median"] <= r["q3"]
    assert "| real kmeans 1 |" in markdown
    capsys.readouterr()
    assert _main(real_curriculum, tmp_path, "--set", f"teacher={run}",
                 "--set", 'select=["nearest"]') == 2  # fmt: skip
    assert "nearest" in capsys.readouterr().err
    assert _main(real_curriculum, tmp_path, "--set", f"teacher={run}",
                 "--set", "seeds=0,one") == 2  # fmt: skip
    assert "seeds='0,one' must be a list" in capsys.readouterr().err
    assert _main(real_curriculum, tmp_path, "--set", f"teacher={tmp_path / 'nothing'}") == 2
    assert "no teacher checkpoint" in capsys.readouterr().err
