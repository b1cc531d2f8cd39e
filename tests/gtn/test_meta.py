import math

import pytest
import torch
from torch import nn

from gtn.generator import GeneratorConfig
from gtn.meta import MetaConfig, MetaTrainer, load_meta_checkpoint, teacher_from_checkpoint
from gtn.teacher import GTNTeacher, TeacherConfig
from tests.gtn.tiny import CLASSES, blobs, flat, learner

_data, _learner, _flat = blobs, learner, flat


def _teacher(curriculum="full", seed=0):
    gen = GeneratorConfig(channels=1, image_size=8, num_classes=CLASSES, noise_dim=8, hidden=32,
                          conv_channels=(8, 4), low=(-1.0,), high=(3.0,))  # fmt: skip
    return GTNTeacher(TeacherConfig(generator=gen, curriculum=curriculum, inner_steps=4,
                                    inner_batch=16, seed=seed))  # fmt: skip


def _trainer(teacher, steps=4, factory=_learner, **kwargs):
    x, y = _data()
    config = MetaConfig(outer_steps=steps, outer_lr=0.01, meta_batch=64, checkpoint_every=2,
                        **kwargs)  # fmt: skip
    return MetaTrainer(teacher, factory, x, y, config)


def test_meta_training_lowers_the_meta_loss():
    trainer = _trainer(_teacher(), steps=40)
    history = trainer.run(progress=False)
    first = sum(r.meta_loss for r in history[:8]) / 8
    last = sum(r.meta_loss for r in history[-8:]) / 8
    assert last < first
    assert not any(r.skipped for r in history)


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    straight = _trainer(_teacher(), steps=4)
    straight.run(progress=False)
    first = _trainer(_teacher(), steps=4)
    first.run(progress=False, until=2)
    first.save(tmp_path / "gtn.pt")
    state = load_meta_checkpoint(tmp_path / "gtn.pt")
    resumed = _trainer(teacher_from_checkpoint(state), steps=4)
    resumed.load_state(state)
    assert resumed.step == 2
    resumed.run(progress=False)
    assert torch.equal(_flat(straight.teacher), _flat(resumed.teacher))
    assert [r.meta_loss for r in straight.history] == [r.meta_loss for r in resumed.history]


def test_checkpoint_round_trip_and_weights_only(tmp_path):
    trainer = _trainer(_teacher("shuffled-batch"), steps=2)
    trainer.run(progress=False)
    path = trainer.save(tmp_path / "ckpt.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 1 and raw["step"] == 2
    teacher = teacher_from_checkpoint(load_meta_checkpoint(path))
    assert teacher.config == trainer.teacher.config
    assert torch.equal(_flat(teacher), _flat(trainer.teacher))
    trainer.save(tmp_path / "run" / "checkpoint.pt")  # a run folder is read the same way
    assert load_meta_checkpoint(tmp_path / "run")["step"] == 2


@pytest.mark.parametrize("content", [b"", b"garbage", None])
def test_bad_checkpoints_name_the_path(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"kind": "something else"}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.pt"):
        load_meta_checkpoint(path)
    with pytest.raises(ValueError, match="no such"):
        load_meta_checkpoint(tmp_path / "missing.pt")


class _Poisoned(nn.Module):
    """A learner whose output is NaN: its meta-loss cannot be trusted."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _learner(0)

    def forward(self, x):
        return self.inner(x) * float("nan")


def test_nan_step_is_skipped_and_the_teacher_untouched():
    trainer = _trainer(_teacher(), steps=3, factory=lambda seed: _Poisoned())
    before = _flat(trainer.teacher)
    history = trainer.run(progress=False)
    assert all(r.skipped for r in history) and math.isnan(history[0].meta_loss)
    assert torch.equal(before, _flat(trainer.teacher))
    assert trainer.step == 3


def test_an_update_to_non_finite_weights_stops_the_run_before_it_is_saved(tmp_path):
    """``--outer-lr 1e6``: the step after which the weights are NaN ends the run with a
    clear error; no checkpoint or log of NaN weights is written."""
    from gtn.meta import TeacherDivergedError

    trainer = _trainer(_teacher(), steps=3)
    trainer.checkpoint_path = tmp_path / "checkpoint.pt"
    step = trainer.optimizer.step

    def poisoned_step(*args, **kwargs):
        step(*args, **kwargs)
        with torch.no_grad():
            trainer.trained[0].fill_(float("inf"))

    trainer.optimizer.step = poisoned_step
    with pytest.raises(TeacherDivergedError, match=r"outer step 0: .*non-finite"):
        trainer.run(progress=False)
    assert not trainer.checkpoint_path.exists()


def test_exploding_step_is_skipped():
    trainer = _trainer(_teacher(), steps=1, max_meta_loss=1e-6)
    before = _flat(trainer.teacher)
    assert trainer.run(progress=False)[0].skipped
    assert torch.equal(before, _flat(trainer.teacher))


def test_teach_is_deterministic_and_leaves_the_teacher_alone():
    teacher = _teacher("none")
    before = _flat(teacher)
    a, b = teacher.teach(_learner(3), seed=5), teacher.teach(_learner(3), seed=5)
    c = teacher.teach(_learner(3), seed=6)
    assert torch.equal(_flat(a), _flat(b))
    assert not torch.equal(_flat(a), _flat(c))
    assert not torch.equal(_flat(a), _flat(_learner(3)))
    assert torch.equal(before, _flat(teacher))


def test_intermediate_losses_and_truncation_run():
    trainer = _trainer(_teacher(), steps=2, intermediate_every=2, truncate=2)
    assert len(trainer.run(progress=False)) == 2


def test_sample_grid_shape_and_range():
    grid = _teacher().sample_grid(per_class=3)
    assert grid.shape == (1, CLASSES * 8, 3 * 8)
    assert grid.min() >= 0 and grid.max() <= 1


def test_gradient_checkpointing_gives_the_same_outer_step():
    """Checkpointing the generator and the inner steps changes memory, not the meta-gradient
    (compared before Adam, which turns float noise in near-zero components into full steps)."""
    results = []
    for checkpoint in (False, True):
        trainer = _trainer(_teacher(), steps=1, checkpoint=checkpoint)
        grads = []

        def keep(optimizer, *_, grads=grads):
            params = [p for group in optimizer.param_groups for p in group["params"]]
            grads.append(torch.cat([p.grad.flatten() for p in params if p.grad is not None]))

        trainer.optimizer.register_step_pre_hook(keep)
        record = trainer.outer_step()
        results.append((record.meta_loss, grads[0]))
    (loss_a, a), (loss_b, b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    assert a.abs().sum() > 0
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)


def test_training_only_the_schedule_leaves_the_data_alone(tmp_path):
    teacher = _teacher()
    data = {k: v.clone() for k, v in teacher.state_dict().items() if "schedule" not in k}
    schedule = _flat(teacher.schedule).clone()
    trainer = _trainer(teacher, steps=3, train="schedule")
    trainer.run(progress=False)
    assert not any(r.skipped for r in trainer.history)
    assert not torch.equal(_flat(teacher.schedule), schedule)
    after = teacher.state_dict()
    assert all(torch.equal(after[k], v) for k, v in data.items())
    assert all(not p.requires_grad for p in teacher.generator.parameters())
    trainer.save(tmp_path / "c.pt")  # resumes with the same (schedule-only) optimiser
    again = _trainer(_teacher(), steps=4, train="schedule")
    again.load_state(load_meta_checkpoint(tmp_path / "c.pt"))
    again.run(progress=False)
    assert again.step == 4
    with pytest.raises(ValueError, match="'pixels'"):
        MetaConfig(train="pixels")
