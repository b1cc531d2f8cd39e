"""gtn's atomic save never renames over something that is not a regular file."""

from __future__ import annotations

import os

import pytest
import torch

from gtn.io import atomic_save


def test_replaces_a_file_and_refuses_a_folder_or_a_fifo(tmp_path):
    path = atomic_save({"a": 1}, tmp_path / "x.pt")
    atomic_save({"a": 2}, path)
    assert torch.load(path, weights_only=True) == {"a": 2}
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target in (tmp_path, fifo):
        with pytest.raises(FileExistsError, match="not a regular file"):
            atomic_save({"a": 3}, target)
    assert fifo.exists() and not fifo.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "x.pt"]  # no temporary left
