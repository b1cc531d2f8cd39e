"""A resume says what it does: options it cannot change are refused in one line naming them;
``--schedule`` extends a finished search, which goes on with its Q-table and replay memory."""

from __future__ import annotations

from metaqnn.cli import main
from metaqnn.search.store import SearchStore

SEARCH = ["search", "--dataset", "digits", "--reward", "real", "--epochs", "1", "--no-progress"]


def test_a_finished_search_is_extended_and_fixed_options_are_refused(capsys, tmp_path):
    run = tmp_path / "run"
    assert main([*SEARCH, "--schedule", "1.0:3", "--logdir", str(run)]) == 0
    store = SearchStore.open(run)
    agent_before = store.state()["agent"]
    store.close()
    capsys.readouterr()

    assert main(["search", "--resume", str(run), "--epochs", "5", "--seed=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--epochs, --seed" in err[0], err

    assert main(["search", "--resume", str(run), "--schedule", "1.0:3,0.5:2",
                 "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "3 -> 5 models" in out
    store = SearchStore.open(run)
    assert store.count() == 5
    epsilons = [m.epsilon for m in store.models()]
    assert epsilons == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert store.state()["agent"] != agent_before  # it learned on, from where it was
    assert store.state()["samples"] > 3  # the replay memory grew on from the first run's
    store.close()


def test_a_schedule_shorter_than_what_is_recorded_is_refused(capsys, tmp_path):
    run = tmp_path / "run"
    assert main([*SEARCH, "--schedule", "1.0:3", "--logdir", str(run)]) == 0
    capsys.readouterr()
    assert main(["search", "--resume", str(run), "--schedule", "1.0:2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 are already recorded" in err[0], err
