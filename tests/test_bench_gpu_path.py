"""The fast-path benchmark runs on a CPU (its GPU figures need a GPU; the code paths do not)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_gpu_path_bench_runs_on_cpu():
    cmd = [
        sys.executable,
        "bench/gpu_path.py",
        "--dataset",
        "digits",
        "--rewards",
        "1",
        "--outer-steps",
        "1",
        "--variants",
        "fp32,bf16,5seeds-vmap",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("fp32 ") for line in lines)
    assert any(line.startswith("5seeds-vmap") and "5 learners" in line for line in lines)
    assert "steps/s" in lines[-1]


def test_gpu_path_bench_rejects_an_unknown_variant():
    cmd = [sys.executable, "bench/gpu_path.py", "--dataset", "digits", "--variants", "fp8"]
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "unknown variants ['fp8']" in out.stderr
