"""The shared evaluation module: attacks, corruptions, the robustness report, transfer and
rank correlation. Everything works on [0, 1] pixels of a frozen model (see :mod:`.pixels`).

Public entry points:

- :func:`run_attack` with :data:`ATTACKS` (``fgsm``, ``bim``, ``ll``, ``pgd``, ``lbfgs``)
- :func:`corrupt` with :data:`CORRUPTIONS` (15 corruptions, severities 1..5)
- :func:`evaluate_robustness` -> :class:`RobustnessReport`; :mod:`.report` writes it
- :func:`transfer` -> :class:`TransferRun` per mode (``as_is``, ``scratch``, ``finetuned``)
- :func:`rank_correlation` -> :class:`CorrelationResult`
"""

from metaqnn.evaluation.attacks import ATTACKS, AttackConfig, run_attack
from metaqnn.evaluation.correlation import CorrelationResult, load_reward_pairs, rank_correlation
from metaqnn.evaluation.corruptions import CORRUPTIONS, corrupt
from metaqnn.evaluation.pixels import PixelModel, accuracy, frozen, predict
from metaqnn.evaluation.robustness import (
    RobustnessConfig,
    RobustnessReport,
    destruction_rate,
    evaluate_robustness,
)
from metaqnn.evaluation.transfer import TRANSFER_MODES, TransferRun, transfer

__all__ = [
    "ATTACKS",
    "CORRUPTIONS",
    "TRANSFER_MODES",
    "AttackConfig",
    "CorrelationResult",
    "PixelModel",
    "RobustnessConfig",
    "RobustnessReport",
    "TransferRun",
    "accuracy",
    "corrupt",
    "destruction_rate",
    "evaluate_robustness",
    "frozen",
    "load_reward_pairs",
    "predict",
    "rank_correlation",
    "run_attack",
    "transfer",
]
