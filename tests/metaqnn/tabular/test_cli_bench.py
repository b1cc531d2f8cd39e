"""``metaqnn bench``: errors are one line, and build / export / show work end to end."""

from __future__ import annotations

import pytest

from metaqnn.cli.main import main


@pytest.mark.parametrize(
    "argv, match",
    [
        (["bench", "build", "--space", "nope"], "unknown search-space preset 'nope'"),
        (["bench", "build", "--recipe", "long"], "unknown bench recipe 'long'"),
        (["bench", "build", "--seeds", "0"], "--seeds 0: must be an integer of at least 1"),
        (["bench", "build", "--max-units", "0"], "--max-units 0"),
        (["bench", "export", "/no/such/dir", "--out", "x.npz"], "no bench build here"),
        (["bench", "show", "/no/such/table.npz"], "/no/such/table.npz: cannot read"),
    ],
)
def test_bad_inputs_are_one_line_errors(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1, err


@pytest.mark.slow
def test_build_export_show_on_a_chunk_of_the_real_space(tmp_path, capsys, shared_data_root):
    """Two smoke-recipe runs of ``mnist-bench``, exported partial, shown."""
    out, table = tmp_path / "b", tmp_path / "t.npz"
    base = ["bench", "build", "--recipe", "smoke", "--gtn-teacher", "none", "--out", str(out),
            "--data-root", str(shared_data_root), "--no-progress"]  # fmt: skip
    assert main([*base, "--max-units", "1"]) == 0
    assert main([*base, "--max-units", "1"]) == 0
    text = capsys.readouterr().out
    assert "2 of 2724 runs, 1362 architectures" in text and "--gtn-teacher none" in text
    assert main(["bench", "export", str(out), "--out", str(table)]) == 2
    assert "unfinished" in capsys.readouterr().err
    assert main(["bench", "export", str(out), "--out", str(table), "--partial"]) == 0
    assert main(["bench", "show", str(table), "--top", "1"]) == 0
    shown = capsys.readouterr().out
    assert "space 'mnist-bench'" in shown and "[C(8,3,1), C(8,3,1), C(8,3,1), C(8,3,1)" in shown
