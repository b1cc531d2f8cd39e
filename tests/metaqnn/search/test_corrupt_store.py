"""A damaged or edited ``search.db`` is one line (``metaqnn: error: RUN/search.db ...``, exit
2) from ``metaqnn search --resume`` and ``metaqnn report``, never a traceback; a read-only run
folder can still be reported on."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from metaqnn.cli.main import main
from metaqnn.rewards.result import RewardResult
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.store import SearchStore
from metaqnn.search.workers import InlineBackend


class _Reward:
    def evaluate(self, arch):
        text = str(arch)
        value = (zlib.crc32(text.encode()) % 1000) / 1000
        return RewardResult(text, value, "ok", "", value, None, 10, 20, 1, 0, 0.01)


@pytest.fixture(scope="module")
def intact(tmp_path_factory) -> Path:
    """A small finished search (20 models) made without training anything."""
    run = tmp_path_factory.mktemp("intact") / "run"
    config = SearchConfig(reward=RewardSpec(name="real", dataset="digits"),
                          schedule="1.0:12,0.5:8", replay=5)  # fmt: skip
    search = Search.create(config, run, backend=InlineBackend(reward=_Reward()))
    search.run(progress=False)
    search.close()
    return run


def _copy(intact: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(intact, run)
    return run


def _sql(run: Path, statement: str, *params) -> None:
    db = sqlite3.connect(run / "search.db")
    with db:
        db.execute(statement, params)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def _one_line_errors(run: Path, capsys) -> list[str]:
    lines = []
    for argv in (["search", "--resume", str(run), "--no-progress"], ["report", str(run)]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"metaqnn: error: {run}/search.db"), err
        lines.append(err[0])
    return lines


def test_overwritten_pages_are_one_line(intact, tmp_path, capsys):
    run = _copy(intact, tmp_path)
    db = sqlite3.connect(run / "search.db")
    page = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name='models'").fetchone()[0]
    db.close()
    data = bytearray((run / "search.db").read_bytes())
    start = (root - 1) * page + 8  # the page's body, past its header: in the middle of the file
    data[start : start + 512] = bytes(range(256)) * 2
    (run / "search.db").write_bytes(bytes(data))
    assert all("damaged" in line for line in _one_line_errors(run, capsys))


def test_malformed_state_json_is_one_line(intact, tmp_path, capsys):
    run = _copy(intact, tmp_path)
    _sql(run, "UPDATE meta SET value=? WHERE key='state'", '{"agent": {"q": [')
    assert all("'state' is not JSON" in line for line in _one_line_errors(run, capsys))


def test_state_missing_a_key_is_one_line_on_resume_and_no_matter_to_report(
    intact, tmp_path, capsys
):
    run = _copy(intact, tmp_path)
    state = SearchStore.open(run).state()
    del state["agent"]
    _sql(run, "UPDATE meta SET value=? WHERE key='state'", json.dumps(state))
    assert main(["search", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"metaqnn: error: {run}/search.db: the stored search state lacks agent"]
    assert main(["report", str(run)]) == 0  # the report reads the models only


def test_state_that_is_not_an_object_is_one_line(intact, tmp_path, capsys):
    run = _copy(intact, tmp_path)
    _sql(run, "UPDATE meta SET value=? WHERE key='state'", "[1, 2]")
    assert all("state is a list, not an object" in line for line in _one_line_errors(run, capsys))


def test_state_with_a_broken_q_table_is_one_line_on_resume(intact, tmp_path, capsys):
    run = _copy(intact, tmp_path)
    state = SearchStore.open(run).state()
    state["agent"]["q"] = 5
    _sql(run, "UPDATE meta SET value=? WHERE key='state'", json.dumps(state))
    assert main(["search", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"metaqnn: error: {run}/search.db: the stored search state is unusable "
                   "(TypeError: 'int' object is not iterable)"]  # fmt: skip


def test_config_missing_a_key_is_one_line(intact, tmp_path, capsys):
    run = _copy(intact, tmp_path)
    _sql(run, "UPDATE meta SET value=? WHERE key='config'", json.dumps({"schedule": "quick"}))
    assert all("stored search config is unusable" in line
               for line in _one_line_errors(run, capsys))  # fmt: skip


def test_non_numeric_reward_is_one_line(intact, tmp_path, capsys):
    run = _copy(intact, tmp_path)
    _sql(run, "UPDATE models SET reward='lots' WHERE id=2")
    for line in _one_line_errors(run, capsys):
        assert "model 2 (" in line and "has reward 'lots', not a number" in line


def test_intact_copy_still_reports(intact, tmp_path, capsys):
    run = _copy(intact, tmp_path)
    assert main(["report", str(run), "--top", "3"]) == 0
    assert (run / "report" / "top.md").is_file()


# ------------------------------------------------------------------ read-only run folders
def _as_unprivileged() -> list[str]:
    """A prefix that runs a command without root's permission to ignore file modes (root
    ignores them otherwise), or [] for a plain user."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions would be ignored")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]


@pytest.mark.slow
def test_report_on_a_read_only_run_folder(intact, tmp_path):
    run = _copy(intact, tmp_path)
    shutil.rmtree(run / "report", ignore_errors=True)
    prefix = _as_unprivileged()
    out = tmp_path / "out"
    subprocess.run(["chmod", "-R", "a-w", str(run)], check=True)
    try:
        base = [*prefix, sys.executable, "-m", "metaqnn", "report", str(run)]
        here = subprocess.run(base, capture_output=True, text=True, timeout=120)
        assert here.returncode == 2, here.stderr
        assert here.stderr.strip().splitlines() == [
            f"metaqnn: error: cannot write the report to {run}/report (Permission denied); "
            "write it elsewhere with `metaqnn report RUN_DIR --out DIR`"
        ]
        there = subprocess.run([*base, "--out", str(out)], capture_output=True, text=True,
                               timeout=120)  # fmt: skip
        assert there.returncode == 0, there.stderr
        assert (out / "top.md").is_file() and (out / "figure3.png").is_file()
        assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in intact.iterdir()
                                                               if p.name != "report")  # fmt: skip
        retrain = subprocess.run([*base, "--out", str(out), "--retrain-top", "1"],
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert retrain.returncode == 2 and "is read-only" in retrain.stderr, retrain.stderr
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(run)], check=True)
