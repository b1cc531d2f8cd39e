"""``gtn train``'s teacher sizes scale with the dataset: digits gets the demo's small
generator (30 outer steps of the paper's 1024-wide one took 347 s and 3 GB on digits), an
option given on the command line wins."""

from __future__ import annotations

import json

from metaqnn.cli import main
from metaqnn.cli.gtn import scaled_defaults

TINY = ["--inner-steps", "2", "--outer-steps", "1", "--max-minutes", "0", "--eval-archs", "0",
        "--no-progress"]  # fmt: skip


def _config(run) -> dict:
    return json.loads((run / "config.json").read_text())


def test_digits_gets_a_small_teacher_and_mnist_the_papers():
    assert scaled_defaults("digits")["generator_hidden"] == 256
    assert scaled_defaults("digits")["noise_dim"] == 32
    assert scaled_defaults("mnist")["generator_hidden"] == 1024


def test_the_dataset_default_is_used_unless_an_option_is_given(tmp_path):
    small, mine = tmp_path / "small", tmp_path / "mine"
    assert main(["gtn", "train", "--dataset", "digits", "--logdir", str(small), *TINY]) == 0
    assert main(["gtn", "train", "--dataset", "digits", "--logdir", str(mine),
                 "--generator-hidden", "48", *TINY]) == 0  # fmt: skip
    text_small, text_mine = json.dumps(_config(small)), json.dumps(_config(mine))
    assert '"generator_hidden": 256' in text_small and '"noise_dim": 32' in text_small
    assert '"generator_hidden": 48' in text_mine
