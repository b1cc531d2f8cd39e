import pytest
import torch

from envs.layers import Architecture
from metaqnn.core.checkpoint import load_checkpoint
from metaqnn.core.data import load_dataset
from metaqnn.core.nets import build_model
from metaqnn.core.training import TrainConfig, evaluate
from metaqnn.errors import ConfigError
from metaqnn.evaluation.transfer import for_classes, load_matching, transfer

ARCH = Architecture.parse("[C(8,3,1), P(2,2), FC(16), SM(10)]")


def test_load_matching_skips_tensors_of_another_shape():
    source = build_model(ARCH, in_channels=1, input_size=8).state_dict()
    target = build_model(for_classes(ARCH, 4), in_channels=1, input_size=8)
    moved, fresh = load_matching(target, source)
    assert fresh and all(name.startswith(fresh[0].rsplit(".", 2)[0]) for name in fresh)
    assert set(moved) | set(fresh) == set(target.state_dict())
    for name in moved:
        assert torch.equal(target.state_dict()[name], source[name])


def test_for_classes_resizes_only_the_classifier():
    assert str(for_classes(ARCH, 3)) == "[C(8,3,1), P(2,2), FC(16), SM(3)]"


def test_transfer_modes_on_digits(digits_checkpoint):
    ckpt = load_checkpoint(digits_checkpoint)
    data = load_dataset("digits")
    config = TrainConfig(steps=15, batch_size=64, max_restarts=0)
    runs = {r.mode: r for r in transfer(ckpt, data, config,
                                        modes=("as_is", "scratch", "finetuned"))}  # fmt: skip
    as_is = evaluate(ckpt.build_model(), data.test).accuracy
    assert runs["as_is"].test_accuracy == pytest.approx(as_is)
    assert runs["as_is"].steps == 0 and not runs["as_is"].reinitialised
    assert runs["scratch"].steps == runs["finetuned"].steps == 15
    assert not runs["scratch"].transferred
    assert set(runs["finetuned"].transferred) == set(ckpt.state_dict)
    assert runs["finetuned"].test_accuracy > runs["scratch"].test_accuracy  # a head start


def test_unknown_mode_is_named(digits_checkpoint):
    with pytest.raises(ConfigError, match="'distill'"):
        transfer(load_checkpoint(digits_checkpoint), load_dataset("digits"), TrainConfig(steps=1),
                 modes=("distill",))  # fmt: skip
