import pytest
import torch
from torch import nn
from torch.func import functional_call

from gtn.distill import DistillConfig, DistilledData
from gtn.meta import MetaConfig, MetaTrainer, load_meta_checkpoint, teacher_from_checkpoint
from tests.gtn.tiny import CLASSES
from tests.gtn.tiny import blobs as _data
from tests.gtn.tiny import flat as _flat
from tests.gtn.tiny import learner as _learner


def _distilled(**kwargs):
    kwargs = {"steps": 3, "epochs": 2, **kwargs}
    config = DistillConfig(channels=1, image_size=8, num_classes=CLASSES, low=(-1.0,),
                           high=(3.0,), **kwargs)  # fmt: skip
    return DistilledData(config)


def _trainer(data, steps=4, cls=MetaTrainer, **kwargs):
    x, y = _data()
    config = MetaConfig(outer_steps=steps, outer_lr=0.05, meta_batch=64, checkpoint_every=2,
                        **kwargs)  # fmt: skip
    return cls(data, _learner, x, y, config)


def _accuracy(learner, x, y):
    with torch.no_grad():
        return (learner(x).argmax(1) == y).float().mean().item()


def test_shapes_balanced_labels_and_positive_lrs():
    data = _distilled(images_per_class=2)
    assert data.images().shape == (3, 2 * CLASSES, 1, 8, 8)
    assert data.images(4).shape == (2 * CLASSES, 1, 8, 8)
    assert torch.equal(data.images(4), data.images(1))  # epoch 2 replays the batches
    assert torch.bincount(data.labels).tolist() == [2] * CLASSES
    assert data.config.inner_steps == data.schedule.steps == 6
    assert torch.allclose(data.schedule.lrs(), torch.full((6,), 0.02))
    assert (data.schedule.momenta() == 0).all()
    images = data.images()
    assert images.min() > -1 and images.max() < 3
    assert not torch.equal(_flat(data), _flat(_distilled(images_per_class=2, seed=1)))
    with pytest.raises(ValueError, match="epochs=0"):
        _distilled(epochs=0)


def test_meta_gradient_reaches_pixels_and_lrs():
    data, learner = _distilled(), _learner(0)
    x, y = _data(64)
    result = data.unroll(learner)
    logits = functional_call(learner, (result.params, dict(learner.named_buffers())), (x,))
    nn.functional.cross_entropy(logits, y).backward()
    for grad in (data.raw_pixels.grad, data.schedule.raw_lr.grad):
        assert torch.isfinite(grad).all()
    assert data.raw_pixels.grad.abs().sum(dim=(1, 2, 3, 4)).min() > 0  # every step's batch
    assert (data.schedule.raw_lr.grad != 0).all()  # every (epoch, step) learning rate


def test_meta_training_lowers_the_loss_and_teaches_a_fresh_learner():
    trainer = _trainer(_distilled(), steps=30)
    history = trainer.run(progress=False)
    first = sum(r.meta_loss for r in history[:6]) / 6
    last = sum(r.meta_loss for r in history[-6:]) / 6
    assert last < first and not any(r.skipped for r in history)
    assert (trainer.teacher.schedule.lrs() > 0).all()
    x, y = _data(200, seed=1)  # held out
    accuracy = _accuracy(trainer.teacher.teach(_learner(12345)), x, y)
    assert accuracy > 0.5, accuracy  # chance is 0.25


def test_meta_trainer_runs_distilled_data_unchanged():
    trainer = _trainer(_distilled(), steps=2, cls=MetaTrainer, intermediate_every=2, truncate=3)
    before = _flat(trainer.teacher)
    assert len(trainer.run(progress=False)) == 2
    assert not torch.equal(before, _flat(trainer.teacher))


def test_teach_is_deterministic_and_leaves_the_data_alone():
    data = _distilled()
    before = _flat(data)
    a, b = data.teach(_learner(3), seed=5), data.teach(_learner(3), seed=5)
    assert torch.equal(_flat(a), _flat(b))
    assert not torch.equal(_flat(a), _flat(_learner(3)))
    assert not torch.equal(_flat(a), _flat(data.teach(_learner(3), steps=2)))
    assert torch.equal(before, _flat(data))


def test_checkpoint_round_trip_weights_only_and_resume(tmp_path):
    straight = _trainer(_distilled(), steps=4)
    straight.run(progress=False)
    first = _trainer(_distilled(), steps=4)
    first.run(progress=False, until=2)
    path = first.save(tmp_path / "dd.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == "dd-meta" and raw["format_version"] == 1 and raw["step"] == 2
    state = load_meta_checkpoint(path)
    data = teacher_from_checkpoint(state)
    assert data.config == first.teacher.config
    assert torch.equal(_flat(data), _flat(first.teacher))
    resumed = _trainer(data, steps=4)
    resumed.load_state(state)
    resumed.run(progress=False)
    assert torch.equal(_flat(straight.teacher), _flat(resumed.teacher))


@pytest.mark.parametrize("content", [b"garbage", None])
def test_bad_checkpoints_name_the_path(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"kind": "gtn-meta"}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.pt"):
        load_meta_checkpoint(path)


def test_tensorboard_logging_and_grid(tmp_path):
    pytest.importorskip("tensorboard")
    data = _distilled(images_per_class=2)
    x, y = _data()
    config = MetaConfig(outer_steps=2, meta_batch=16, checkpoint_every=1, log_every=1)
    MetaTrainer(data, _learner, x, y, config, logdir=tmp_path).run(progress=False)
    assert any(tmp_path.iterdir())
    grid = data.sample_grid()
    assert grid.shape == (1, CLASSES * 8, 3 * 2 * 8)
    assert grid.min() >= 0 and grid.max() <= 1
    step, image, k = 2, 1, 3  # row k, column step * images_per_class + image
    expected = (data.images(step)[image * CLASSES + k] + 1) / 4  # [-1, 3] -> [0, 1]
    column = step * 2 + image
    assert torch.allclose(grid[:, 8 * k : 8 * k + 8, 8 * column : 8 * column + 8], expected)
    assert data.labels[image * CLASSES + k] == k
