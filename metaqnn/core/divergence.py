"""When a training result is nonsense: the rule that marks a model as diverged.

A classifier that outputs the same probabilities for every class has a cross-entropy of
``ln(classes)`` (2.30 for ten classes); training only ever brings it below that, and an
overfitting model creeps a little above it. A loss that is not finite, or a validation (or
test) loss above :data:`EXPLODED_FACTOR` times ``ln(classes)``, means the weights blew up (a
learning rate far too high, say): its accuracy is luck and its checkpoint is not a model.
:func:`metaqnn.core.training.train_model` marks such a run ``status="diverged"`` (and, in the
first epoch, restarts it at a lower learning rate); ``metaqnn train`` saves no checkpoint of it.
"""

from __future__ import annotations

import math

#: A validation loss above this many times ``ln(classes)`` is a diverged model.
EXPLODED_FACTOR = 10.0


def loss_limit(num_classes: int) -> float:
    """The largest validation loss of a model that has not diverged:
    ``EXPLODED_FACTOR * ln(num_classes)`` (23.0 for ten classes)."""
    return EXPLODED_FACTOR * math.log(max(num_classes, 2))


def divergence(
    loss: float, num_classes: int, *, train_loss: float = 0.0, split: str = "validation"
) -> str:
    """Why a model with these losses has diverged, or ``""`` when it has not.

    Args:
        loss: Mean cross-entropy on held-out data (validation or test).
        num_classes: Classes of the model's output.
        train_loss: Mean training loss of the last epoch (only its finiteness is judged: a
            loss that explodes and recovers within an epoch is not a divergence).
        split: The name of the held-out data, for the message.

    Returns:
        A one-line reason, or ``""``.
    """
    if not (math.isfinite(train_loss) and math.isfinite(loss)):
        return f"loss is not finite (train {train_loss:.4g}, {split} {loss:.4g})"
    limit = loss_limit(num_classes)
    if loss > limit:
        return (
            f"{split} loss {loss:.4g} exploded (above {EXPLODED_FACTOR:g} x ln({num_classes}) "
            f"= {limit:.3g})"
        )
    return ""
