import csv

from metaqnn.search.report import retrained_name
from metaqnn.search.store import SearchStore
from tests.metaqnn.cli.test_cli import GTN_TINY, _one_line_error, _run


def test_gtn_search_report_and_resume(capsys, tmp_path):
    gtn, run = tmp_path / "gtn", tmp_path / "search"
    assert (
        _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(gtn), *GTN_TINY)[0] == 0
    )
    code, out, _ = _run(capsys, "search", "--reward", "gtn", "--gtn-checkpoint", str(gtn),
                        "--schedule", "1.0:4,0.5:3", "--max-models", "4", "--score-size", "100",
                        "--gtn-seeds", "2", "--logdir", str(run), "--no-progress")  # fmt: skip
    assert code == 0, out
    assert (
        "4 new models" in out
        and "4 of 7 recorded" in out
        and f"metaqnn search --resume {run}" in out
    )
    code, out, _ = _run(capsys, "search", "--resume", str(run), "--no-progress")
    assert code == 0 and "3 new models" in out and "7 of 7" in out
    store = SearchStore.open(run)
    assert store.config["reward"]["gtn_seeds"] == 2  # kept across the resume
    models = store.models()
    assert len(models) == 7 == len({m.architecture for m in models})
    assert all(m.status == "ok" and 0 <= m.reward <= 1 for m in models)
    with open(run / "report" / "top.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["reward"]) for r in rows] == sorted((m.reward for m in models), reverse=True)
    assert (run / "report" / "figure3.png").stat().st_size > 0
    assert list(run.glob("events.out.tfevents.*"))
    code, out, _ = _run(capsys, "report", str(run), "--top", "3", "--retrain-top", "1",
                        "--epochs", "1", "--no-progress")  # fmt: skip
    assert code == 0, out
    assert "retrained" in out
    retrained = SearchStore.open(run).retrained()
    assert len(retrained) == 1
    # the retrained weights are kept as a checkpoint that evaluates to the same test accuracy
    ((arch, row),) = retrained.items()
    kept = run / "retrained" / retrained_name(arch, 1)
    assert f"weights {kept}" in out
    code, out, _ = _run(capsys, "evaluate", "accuracy", str(kept))
    assert code == 0, out
    assert f"{row['test_accuracy']:.4f}" in out


def test_search_errors_are_one_line(capsys, tmp_path):
    _one_line_error(capsys, "search", "--reward", "gtn", "--logdir", str(tmp_path / "a"),
                    contains=("--gtn-checkpoint",))  # fmt: skip
    _one_line_error(capsys, "search", "--reward", "real", "--schedule", "soon",
                    "--logdir", str(tmp_path / "b"), contains=("soon",))  # fmt: skip
    _one_line_error(capsys, "search", "--resume", str(tmp_path / "nothing"),
                    contains=("no search store",))  # fmt: skip
    _one_line_error(capsys, "search", "--reward", "gtn", "--gtn-checkpoint",
                    str(tmp_path / "nope"), "--logdir", str(tmp_path / "c"),
                    contains=("nope",))  # fmt: skip
    _one_line_error(capsys, "report", str(tmp_path / "nothing"), contains=("no search store",))
    _one_line_error(capsys, "search", "--reward", "real", "--gtn-seeds", "0",
                    "--logdir", str(tmp_path / "d"), contains=("--gtn-seeds 0",))  # fmt: skip
