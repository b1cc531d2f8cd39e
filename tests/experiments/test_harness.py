"""The experiment harness: configs from TOML with a quick table, clear errors, resumable memo."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch

from experiments.harness import (
    REPORT_ONLY,
    Context,
    Outcome,
    config_digest,
    load_config,
    main,
    teacher_run,
)
from gtn.meta import checkpoint_file, load_meta_checkpoint
from metaqnn.errors import ConfigError
from metaqnn.teacher.run import TeacherRun


@dataclass(frozen=True)
class Config:
    dataset: str = "digits"
    seeds: int = 5
    lrs: tuple[float, ...] = (0.001,)
    steps: int | None = None


@dataclass(frozen=True)
class TeacherConfig:
    teacher: TeacherRun = field(default_factory=TeacherRun)
    teachers: tuple[TeacherRun, ...] = ()


def _toml(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_quick_table_and_overrides(tmp_path):
    path = _toml(tmp_path, "seeds = 5\nlrs = [0.1, 1]\n[quick]\nseeds = 1\n")
    assert load_config(Config, path) == Config(seeds=5, lrs=(0.1, 1.0))
    assert load_config(Config, path, quick=True).seeds == 1
    cfg = load_config(Config, path, quick=True, overrides=["seeds=3", "steps=7", "dataset=mnist"])
    assert (cfg.seeds, cfg.steps, cfg.dataset) == (3, 7, "mnist")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("sedes = 5\n", "unknown key.*sedes"),
        ('seeds = "five"\n', "seeds='five' must be an integer"),
        ("lrs = 0.1\n", "lrs=0.1 must be a list"),
        ("seeds = [\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_value(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(Config, _toml(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Config, tmp_path / "nope.toml")


def test_memo_survives_a_restart(tmp_path):
    calls = []

    def ctx():
        return Context("x", tmp_path, tmp_path, torch.device("cpu"), None, quick=True)

    assert ctx().memo("a", lambda: calls.append(1) or {"acc": 0.5}) == {"acc": 0.5}
    assert ctx().memo("a", lambda: calls.append(1) or {"acc": 0.9}) == {"acc": 0.5}
    assert calls == [1]
    fresh = ctx()  # a new process sees what an earlier one finished
    assert fresh.has_memo("a") and not fresh.has_memo("b")


def test_digest_changes_with_config():
    assert config_digest(Config()) != config_digest(Config(seeds=4))


def test_a_report_only_field_leaves_the_digest_and_so_the_memo_alone():
    @dataclass(frozen=True)
    class Reported(Config):
        interim: bool = field(default=False, metadata=REPORT_ONLY)

    assert config_digest(Reported()) == config_digest(Reported(interim=True))
    assert config_digest(Reported()) != config_digest(Reported(seeds=4))


def test_main_writes_results_and_reports_bad_config(tmp_path, capsys):
    path = _toml(tmp_path, "seeds = 2\n[quick]\nseeds = 1\n")

    def run(config, ctx):
        return Outcome(f"seeds {config.seeds}", {"seeds": config.seeds}, [{"i": 0}])

    argv = [
        "--config",
        str(path),
        "--quick",
        "--out",
        str(tmp_path / "o"),
        "--work",
        str(tmp_path / "w"),
    ]
    assert main("toy", Config, run, argv) == 0
    record = json.loads((tmp_path / "o" / "results.json").read_text())
    assert record["summary"] == {"seeds": 1} and record["config"]["seeds"] == 1
    assert record["machine"]["torch"] == str(torch.__version__) and record["wall_s"] >= 0
    assert "seeds 1" in (tmp_path / "o" / "results.md").read_text()
    assert main("toy", Config, run, [*argv, "--set", "seeds=x"]) == 2
    assert "seeds='x' must be an integer" in capsys.readouterr().err


def test_teacher_settings_are_tables_of_teacher_run_fields(tmp_path):
    path = _toml(tmp_path, 'teacher = { learner = "paper", inner_steps = 4, init_lr = 1 }\n'
                 'teachers = [{ dataset = "mnist" }, {}]\n')  # fmt: skip
    config = load_config(TeacherConfig, path)
    assert config.teacher == TeacherRun(learner="paper", inner_steps=4, init_lr=1.0)
    assert config.teachers == (TeacherRun(dataset="mnist"), TeacherRun())
    assert load_config(TeacherConfig, _toml(tmp_path, "")).teacher == TeacherRun()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("teacher = { inner_stpes = 4 }\n", r"unknown key teacher\.inner_stpes: not a field of "
         r"metaqnn\.teacher\.run\.TeacherRun"),
        ('teacher = { inner_steps = "4" }\n', r"teacher\.inner_steps='4' must be an integer"),
        ("teacher = 3\n", "teacher=3 must be a table of TeacherRun fields"),
        ("teachers = [{ noise = 1 }]\n", r"unknown key teachers\[0\]\.noise"),
    ],
)  # fmt: skip
def test_bad_teacher_settings_name_the_key(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as error:
        load_config(TeacherConfig, _toml(tmp_path, text))
    assert "\n" not in str(error.value)  # one line


def test_teacher_run_takes_a_mapping_or_a_teacher_run_and_nothing_else():
    assert teacher_run({"learner": "paper"}) == TeacherRun(learner="paper")
    run = TeacherRun(noise_dim=4)
    assert teacher_run(run) is run
    with pytest.raises(ConfigError, match=r"unknown key teacher\.outer_stepz"):
        teacher_run({"outer_stepz": 3})
    with pytest.raises(ConfigError, match="not list"):
        teacher_run(["--learner", "paper"])


def test_gtn_trains_then_reuses_then_resumes(tmp_path, capsys):
    ctx = Context("x", tmp_path, tmp_path, torch.device("cpu"), None, quick=True, progress=False)
    settings = {"inner_steps": 2, "inner_batch": 10, "generator_hidden": 16, "noise_dim": 4,
                "meta_batch": 16, "checkpoint_every": 1}  # fmt: skip
    run_dir = ctx.gtn(tmp_path / "teacher", settings, 1)
    assert run_dir == tmp_path / "teacher"
    state = load_meta_checkpoint(run_dir)
    assert state["step"] == 1 and state["teacher_config"]["inner_steps"] == 2
    assert "+ train_teacher(TeacherRun(" in capsys.readouterr().out
    written = checkpoint_file(run_dir).stat().st_mtime_ns
    assert ctx.gtn(run_dir, settings, 1) == run_dir  # has the steps: reused as it is
    assert checkpoint_file(run_dir).stat().st_mtime_ns == written
    assert "train_teacher" not in capsys.readouterr().out
    ctx.gtn(run_dir, {"inner_steps": 99}, 2)  # fewer steps: resumed, its own settings kept
    state = load_meta_checkpoint(run_dir)
    assert state["step"] == 2 and state["teacher_config"]["inner_steps"] == 2
    assert "resume=" in capsys.readouterr().out
