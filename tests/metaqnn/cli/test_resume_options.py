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


def test_gtn_train_resume_refuses_the_options_it_would_ignore(capsys, tmp_path):
    """``gtn train --resume DIR --inner-steps 8`` used to go on with the run's own inner steps
    without a word; now it is one line naming the option, before anything is read or written."""
    run = tmp_path / "teacher"
    run.mkdir()
    code = main(["gtn", "train", "--resume", str(run), "--inner-steps", "8", "--seed=3",
                 "--dataset", "digits", "--outer-steps", "9"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert (
        "--dataset, --inner-steps, --seed" in err[0]
        and "--outer-steps" not in err[0].split("keeps")[1].split(";")[0]
    ), err
    assert list(run.iterdir()) == []


def test_given_options_follow_nested_commands():
    from metaqnn.cli.main import build_parser, given_options

    argv = ["gtn", "train", "--resume", "r", "--inner-steps=8", "--no-progress"]
    given = given_options(build_parser(only="gtn"), "gtn", argv)
    assert given == {"resume", "inner_steps", "no_progress"}
