import pytest
import torch

from gtn.generator import GeneratorConfig
from gtn.teacher import GTNTeacher, TeacherConfig
from gtn.warmstart import SELECTIONS, WarmStartConfig, fit_to_real, paired_targets
from tests.gtn.tiny import CLASSES, blobs, flat, learner


def _teacher(curriculum="full"):
    gen = GeneratorConfig(channels=1, image_size=8, num_classes=CLASSES, noise_dim=8, hidden=32,
                          conv_channels=(8, 4), low=(-1.0,), high=(3.0,))  # fmt: skip
    return GTNTeacher(TeacherConfig(generator=gen, curriculum=curriculum, inner_steps=4,
                                    inner_batch=16, init_lr=0.2, seed=0))  # fmt: skip


def _taught_accuracy(teacher, x, y, batches=None) -> float:
    model = learner(1)
    teacher.teach(model, seed=1, batches=batches)
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("select", sorted(SELECTIONS))
def test_paired_targets_match_the_labels_without_repeats(select):
    x, y = blobs(64)
    labels = torch.arange(24).view(2, 12) % CLASSES
    targets = paired_targets(labels, x, y, seed=0, select=select)
    assert targets.shape == (2, 12, 1, 8, 8)
    index = [int((x == t).all(dim=(1, 2, 3)).nonzero()[0]) for t in targets.reshape(-1, 1, 8, 8)]
    assert [int(y[i]) for i in index] == labels.reshape(-1).tolist()
    assert len(set(index)) == len(index)  # distinct images while a class has enough
    assert torch.equal(targets, paired_targets(labels, x, y, seed=0, select=select))
    with pytest.raises(ValueError, match="class 3"):
        paired_targets(labels, x[y != 3], y[y != 3], seed=0, select=select)


def test_kmeans_selection_covers_every_mode_of_a_class():
    # One class, four tight modes of unequal size (40, 4, 4, 4 images): a random sample of four
    # usually repeats the big mode; the k-means coreset takes one image of each.
    g = torch.Generator().manual_seed(0)
    centres = 5.0 * torch.eye(4).repeat_interleave(torch.tensor([40, 4, 4, 4]), dim=0)
    x = (centres + 0.05 * torch.randn(52, 4, generator=g)).view(52, 1, 2, 2)
    y = torch.zeros(52, dtype=torch.long)
    labels = torch.zeros(4, dtype=torch.long)
    picked = paired_targets(labels, x, y, seed=0, select="kmeans").view(4, 4)
    assert sorted(picked.argmax(1).tolist()) == [0, 1, 2, 3]
    modes = [paired_targets(labels, x, y, seed=s).view(4, 4).argmax(1) for s in range(10)]
    assert sum(len(set(m.tolist())) < 4 for m in modes) >= 8  # random misses a mode


def test_bad_selection_is_refused():
    x, y = blobs(64)
    with pytest.raises(ValueError, match="'nearest'"):
        paired_targets(torch.zeros(3, dtype=torch.long), x, y, seed=0, select="nearest")
    with pytest.raises(ValueError, match="'nearest'"):
        WarmStartConfig(select="nearest")


@pytest.mark.parametrize("curriculum", ["full", "all-shuffled"])
def test_fit_pulls_the_synthetic_data_onto_real_images_and_it_teaches(curriculum):
    x, y = blobs(256)
    teacher = _teacher(curriculum)
    schedule = flat(teacher.schedule)
    before = _taught_accuracy(teacher, x, y)
    losses = fit_to_real(teacher, x, y, WarmStartConfig(steps=150, lr=0.01))
    assert len(losses) == 150
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    assert torch.equal(flat(teacher.schedule), schedule)  # only generator and inputs move
    after = _taught_accuracy(teacher, x, y)
    assert before < 0.5 and after > 0.95  # it now teaches


def test_after_the_fit_it_teaches_like_the_paired_real_images():
    x, y = blobs(256)
    teacher = _teacher()
    labels = teacher.curriculum.labels  # (steps, B)
    targets = paired_targets(labels, x, y, seed=0)
    real = _taught_accuracy(teacher, x, y, batches=list(zip(targets, labels, strict=True)))
    before = _taught_accuracy(teacher, x, y)
    fit_to_real(teacher, x, y, WarmStartConfig(steps=150, lr=0.01, seed=0))
    after = _taught_accuracy(teacher, x, y)
    assert real > 0.95 and before < real - 0.3 and abs(after - real) < 0.05


def test_fit_is_deterministic():
    x, y = blobs(128)
    a, b = _teacher(), _teacher()
    fit_to_real(a, x, y, WarmStartConfig(steps=5, lr=0.01, seed=3))
    fit_to_real(b, x, y, WarmStartConfig(steps=5, lr=0.01, seed=3))
    assert torch.equal(flat(a), flat(b))


def test_fresh_noise_curriculum_and_bad_config_are_refused():
    x, y = blobs(64)
    with pytest.raises(ValueError, match="'none'"):
        fit_to_real(_teacher("none"), x, y)
    with pytest.raises(ValueError, match="steps=0"):
        WarmStartConfig(steps=0)
    with pytest.raises(ValueError, match="lr=-1"):
        WarmStartConfig(lr=-1.0)
