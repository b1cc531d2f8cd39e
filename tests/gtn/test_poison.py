"""Poisoning with synthetic data (gtn.poison): victim training, the attack, checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gtn.inner_loop import model_params
from gtn.poison import (
    Data,
    PoisonAttack,
    PoisonConfig,
    VictimConfig,
    attack_score,
    attacker_victims,
    epoch_orders,
    evaluate_poisons,
    held_out_victims,
    poisoned_set,
    train_functional,
    train_victim,
)


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of 1x4x4 images: class k lights up quadrant k (pixels in [0, 1])."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = 0.2 * torch.rand(n, 1, 4, 4, generator=gen)
    for k in range(4):
        r, c = divmod(k, 2)
        x[y == k, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] += 0.7
    return x.clamp(0, 1), y


def _data() -> tuple[Data, torch.Tensor]:
    tx, ty = _blobs(96, 0)
    vx, vy = _blobs(64, 1)
    sx, _ = _blobs(32, 2)
    data = Data((tx - 0.3) / 0.3, ty, (vx - 0.3) / 0.3, vy, (0.3,), (0.3,))
    return data, sx[torch.arange(32) % 4 == 0]  # source (class 0) images, not the victim's


def _factory(seed: int) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))


VICTIM = VictimConfig(pretrain_epochs=2, epochs=1, batch_size=16, lr=0.1, momentum=0.5)


def _config(**kw) -> PoisonConfig:
    base = dict(source=0, target=1, count=2, outer_steps=4, outer_lr=0.2, meta_batch=1)
    return PoisonConfig(**{**base, **kw})


def test_functional_training_matches_torch_sgd():
    data, _ = _data()
    model = _factory(0)
    params, buffers = model_params(model)
    orders = epoch_orders(len(data.train_y), 2, 16, seed=3)
    trained = train_functional(
        model,
        {k: v.detach() for k, v in params.items()},
        buffers,
        data.train_x,
        data.train_y,
        orders,
        VICTIM,
        create_graph=False,
    )
    train_victim(model, data.train_x, data.train_y, orders, VICTIM)
    for name, p in model.named_parameters():
        torch.testing.assert_close(trained[name], p.detach(), atol=1e-5, rtol=1e-5)


def test_epoch_orders_cover_each_example_once_per_epoch_and_drop_the_partial_batch():
    batches = epoch_orders(10, 2, 4, seed=0)
    assert len(batches) == 4 and all(len(b) == 4 for b in batches)
    assert len(set(torch.cat(batches[:2]).tolist())) == 8
    assert [b.tolist() for b in batches] == [b.tolist() for b in epoch_orders(10, 2, 4, seed=0)]
    with pytest.raises(ValueError, match="fewer than one batch"):
        epoch_orders(3, 1, 4, seed=0)


def test_attack_lowers_the_adversarial_loss_on_a_known_victim():
    data, source = _data()
    config = _config(count=4, outer_steps=40, known_order=True)
    attack = PoisonAttack(_factory, data, config, VICTIM, source)
    history = attack.run()
    first, last = history[0].adversarial, history[-1].adversarial
    assert last < 0.85 * first, (first, last)  # measured: 2.90 -> 2.35
    pixels = attack.poisons.pixels()
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.shape == (4, 1, 4, 4)


def test_resume_repeats_an_uninterrupted_run(tmp_path):
    data, source = _data()
    straight = PoisonAttack(_factory, data, _config(outer_steps=4), VICTIM, source)
    straight.run()
    ckpt = tmp_path / "poison.pt"
    first = PoisonAttack(_factory, data, _config(outer_steps=2), VICTIM, source)
    first.run(checkpoint=ckpt)
    # a longer attack may not resume a shorter one's config ...
    with pytest.raises(ValueError, match="different config"):
        PoisonAttack(_factory, data, _config(outer_steps=4), VICTIM, source).resume(ckpt)
    # ... so resume the same config and extend the loop by hand
    second = PoisonAttack(_factory, data, _config(outer_steps=2), VICTIM, source)
    assert second.resume(ckpt) and second.step == 2
    second.outer_step()
    second.outer_step()
    torch.testing.assert_close(second.poisons.raw, straight.poisons.raw)
    assert [s.adversarial for s in second.history] == [s.adversarial for s in straight.history]


def test_a_bad_checkpoint_is_named(tmp_path):
    data, source = _data()
    attack = PoisonAttack(_factory, data, _config(), VICTIM, source)
    bad = tmp_path / "junk.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pt"):
        attack.resume(bad)
    torch.save({"kind": "gtn-meta", "version": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a version-1 poison checkpoint"):
        attack.resume(tmp_path / "other.pt")


def test_threat_models_draw_the_victims_they_promise():
    fixed_known = _config(known_order=True, meta_batch=2)
    assert len(set(attacker_victims(fixed_known, 0) + attacker_victims(fixed_known, 5))) == 1
    assert held_out_victims(fixed_known, 5) == attacker_victims(fixed_known, 0)[:1]
    fixed = _config(meta_batch=2)
    seen = {v for step in range(20) for v in attacker_victims(fixed, step)}
    assert len({i for i, _ in seen}) == 1
    held = held_out_victims(fixed, 3)
    assert {i for i, _ in held} == {i for i, _ in seen} and not set(held) & seen
    rand = _config(victim_init="random", init_pool=3, meta_batch=2)
    pool = {i for step in range(30) for i, _ in attacker_victims(rand, step)}
    assert len(pool) == 3
    assert not {i for i, _ in held_out_victims(rand, 4)} & pool


def test_evaluation_trains_real_victims_and_scores_them():
    data, source = _data()
    config = _config(victim_init="random", init_pool=2)
    tx, ty = _blobs(200, 5)
    test_x = (tx - 0.3) / 0.3
    clean = evaluate_poisons(_factory, data, config, VICTIM, None, test_x, ty, runs=2)
    flipped = evaluate_poisons(_factory, data, config, VICTIM, source[:2], test_x, ty, runs=2)
    assert len(clean) == len(flipped) == 2
    assert all(s.accuracy > 0.9 for s, _ in clean), clean
    assert all(isinstance(m, nn.Module) and not m.training for _, m in flipped)


def test_attack_score():
    y = torch.tensor([0, 0, 0, 0, 1, 2, 2, 3])
    p = torch.tensor([1, 1, 0, 2, 1, 2, 0, 3])
    s = attack_score(p, y, source=0, target=1)
    assert s.success == 0.5 and s.source_accuracy == 0.25
    assert s.other_accuracy == 0.75 and s.accuracy == 0.5


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(source=1), "source and target are both 1"),
        (dict(count=0), "count=0"),
        (dict(victim_init="known"), "victim_init='known'"),
        (dict(init="zeros"), "init='zeros'"),
        (dict(victim_init="random", known_order=True), "known_order=True"),
        (dict(outer_lr=0.0), "outer_lr=0.0"),
        (dict(truncate=0), "truncate=0"),
    ],
)
def test_bad_configs_name_the_value(kw, match):
    with pytest.raises(ValueError, match=match):
        _config(**kw)
    with pytest.raises(ValueError, match="batch_size=0"):
        VictimConfig(batch_size=0)


def test_a_non_finite_step_is_skipped_not_fatal():
    data, source = _data()
    attack = PoisonAttack(_factory, data, _config(outer_steps=2), VICTIM, source)
    before = attack.poisons.raw.detach().clone()
    broken = Data(
        data.train_x, data.train_y, data.val_x * float("nan"), data.val_y, data.mean, data.std
    )
    attack.data = broken
    history = attack.run()
    assert [s.skipped for s in history] == [True, True]
    torch.testing.assert_close(attack.poisons.raw.detach(), before)


def test_truncation_changes_the_graph_not_the_training():
    data, source = _data()
    attack = PoisonAttack(_factory, data, _config(count=4), VICTIM, source)
    victim = attack.victim_for(attacker_victims(attack.config, 0)[0][0])
    x, y = poisoned_set(data, attack.poisons.pixels(), 1)
    orders = epoch_orders(len(y), 1, 16, seed=0)
    runs = {}
    for truncate in (None, 2):
        params = {k: v.clone().requires_grad_() for k, v in victim.params.items()}
        runs[truncate] = train_functional(
            victim.model,
            params,
            victim.buffers,
            x,
            y,
            orders,
            VICTIM,
            create_graph=True,
            truncate=truncate,
        )
    for name, p in runs[None].items():
        torch.testing.assert_close(runs[2][name], p)
    last = torch.cat([orders[-2], orders[-1]])
    grads = {}
    for truncate, params in runs.items():
        loss = sum(p.square().sum() for p in params.values())
        (grads[truncate],) = torch.autograd.grad(
            loss, attack.poisons.raw, retain_graph=True, allow_unused=True
        )
    in_last = (last >= len(data.train_y)).any()
    assert grads[None] is not None and grads[None].abs().sum() > 0
    assert (grads[2] is not None and grads[2].abs().sum() > 0) == bool(in_last)
