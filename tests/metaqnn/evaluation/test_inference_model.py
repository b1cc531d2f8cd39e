"""The inference-optimised copy used for predictions: same predictions, exact fallback."""

from dataclasses import replace

import torch
from torch import nn

from metaqnn.evaluation.pixels import PixelModel, inference_model, predict
from metaqnn.evaluation.robustness import RobustnessConfig, evaluate_robustness


def _bn_net() -> PixelModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 8 * 8, 3),
        )
        with torch.no_grad():
            net[1].running_mean.uniform_(-0.5, 0.5)
            net[1].running_var.uniform_(0.5, 2.0)
    return PixelModel(net, (0.5,), (0.25,))


def test_fast_copy_predicts_like_the_model_and_leaves_it_alone():
    model = _bn_net().train()
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = inference_model(model, x[:16])
    assert fast is not model  # traced, frozen and optimised
    assert torch.equal(predict(fast, x, batch_size=16), predict(model, x, batch_size=16))
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


class _Noisy(nn.Module):
    """Different logits at every call: no traced copy can match it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3] + torch.rand(len(x), 3)


class _Untraceable(nn.Module):
    def forward(self, x: torch.Tensor) -> dict:
        return {"logits": x.flatten(1)[:, :3], "n": len(x)}


def test_falls_back_to_the_model_when_the_copy_differs_or_fails():
    x = torch.rand(4, 1, 8, 8)
    for model in (_Noisy(), _Untraceable()):
        assert inference_model(model, x) is model


def test_report_with_and_without_the_fast_copy_agree(trained):
    config = RobustnessConfig(
        noise_strengths=(0.0, 0.3),
        blur_strengths=(1.0,),
        attacks=("fgsm",),
        epsilons=(16 / 255,),
        corruptions=("jpeg",),
        destruction_attacks=("fgsm",),
        destruction_epsilon=16 / 255,
        destruction_transforms=("gaussian_noise",),
        batch_size=50,
    )
    x, y = trained.pixels[:100], trained.labels[:100]
    fast = evaluate_robustness(trained.model, x, y, config)
    exact = evaluate_robustness(trained.model, x, y, replace(config, fast_inference=False))
    assert "fast inference" in fast.timings and "exact inference" in exact.timings
    for key in ("clean_accuracy", "noise", "blur", "attacks", "corruptions", "destruction"):
        assert fast.to_dict()[key] == exact.to_dict()[key], key
