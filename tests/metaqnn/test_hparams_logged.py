"""Searches and GTN runs write TensorBoard hparams (so the HParams tab compares runs), and a
GTN run logs its last step's scalars and sample images even off the logging period."""

from __future__ import annotations

from pathlib import Path

from metaqnn.cli import main
from tests.metaqnn.cli.test_cli import GTN_TINY


def _events(run: Path) -> bytes:
    return b"".join(p.read_bytes() for p in run.rglob("events.out.tfevents.*"))


def test_a_search_writes_its_hparams_with_best_reward(tmp_path):
    run = tmp_path / "search"
    assert main(["search", "--dataset", "digits", "--reward", "real", "--epochs", "1",
                 "--schedule", "1.0:2", "--logdir", str(run), "--no-progress"]) == 0  # fmt: skip
    events = _events(run)
    assert b"hparams" in events and b"hparam/best_reward" in events


def test_a_gtn_run_logs_its_last_step_images_and_hparams(tmp_path):
    run = tmp_path / "gtn"
    # 3 steps, scalars every 10 and images every 50: only the end-of-run log can show them
    assert main(["gtn", "train", "--outer-steps", "3", "--logdir", str(run), *GTN_TINY]) == 0
    events = _events(run)
    assert b"samples/per_class" in events
    assert b"hparams" in events and b"hparam/learner_accuracy" in events
