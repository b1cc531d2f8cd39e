"""The public API: every name of ``metaqnn.__all__`` imports, ``import metaqnn`` stays light,
and the README's Python examples run as they are (so the README cannot rot)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import metaqnn

REPO = Path(__file__).resolve().parents[1]


def test_every_public_name_imports():
    assert len(metaqnn.__all__) >= 40
    for name in metaqnn.__all__:
        assert getattr(metaqnn, name) is not None, name
    core = {"Search", "SearchConfig", "CNNDesignEnv", "build_model", "train_architecture",
            "train_teacher", "load_teacher", "evaluate_robustness"}  # fmt: skip
    assert core <= set(metaqnn.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Serch'"):
        metaqnn.Serch  # noqa: B018


def test_import_metaqnn_loads_no_torch():
    code = "import sys, metaqnn; print(metaqnn.__all__[:1]); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False"


def _python_blocks(section: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


@pytest.mark.slow
@pytest.mark.parametrize("section", ["Python API", "The environment"])
def test_readme_examples_run(section, tmp_path):
    blocks = _python_blocks(section)
    assert blocks, f"no python examples under '## {section}'"
    script = tmp_path / "examples.py"
    script.write_text("\n\n".join(blocks))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
