"""Poisoning with synthetic data: Dataset Distillation's malicious objective (Wang, Zhu,
Torralba, Efros 2018, arXiv 1811.10959), with the poisons mixed into a victim's training set.

A handful of learned images, all labelled ``target``, are added to a clean training set. The
victim trains on the union as it would on any data: shuffled mini-batches, SGD with momentum,
optionally after pre-training on the clean data alone (the poisons then arrive with a data
update, a common way for scraped data to reach a model). The attacker learns the poisons' pixels
by backpropagating through that training (the functional inner loop of
:mod:`gtn.inner_loop`) to a malicious outer objective on held-out real images: cross-entropy of
the ``source`` class towards ``target``, plus cross-entropy of every other class towards its own
label, so that accuracy elsewhere stays put.

Two threat models, as in DD: ``fixed`` (the attacker knows the victim's initialisation: one
victim, fresh batch orders every outer step) and ``random`` (only the architecture is known:
every outer step draws victims from a pool of initialisations; evaluation uses unseen ones).

Pixels are ``sigmoid(raw)`` in [0, 1] (valid images), normalised with the data's mean and std
before the victim sees them. Poisons start as ``source``-class images (the label-flipping
baseline: outer step 0 is that attack) or as uniform noise.

This package is torch only: it trains whatever module the factory it is handed builds. Its
modules: :mod:`gtn.poison.config` (the attack's and the victim's configs),
:mod:`gtn.poison.victims` (victim training and which victims each step trains) and
:mod:`gtn.poison.attack` (the poisons, the outer loop, checkpoints and the evaluation).
"""

from gtn.poison.attack import (
    CHECKPOINT_KIND,
    CHECKPOINT_VERSION,
    AttackScore,
    PoisonAttack,
    PoisonSet,
    StepStats,
    attack_score,
    evaluate_poisons,
    outer_losses,
    poisoned_set,
)
from gtn.poison.config import POISON_INITS, VICTIM_INITS, PoisonConfig, VictimConfig
from gtn.poison.victims import (
    Data,
    Victim,
    attacker_victims,
    derived_seed,
    epoch_orders,
    held_out_victims,
    pretrain_orders,
    pretrained_victim,
    train_functional,
    train_victim,
)

__all__ = [
    "CHECKPOINT_KIND",
    "CHECKPOINT_VERSION",
    "POISON_INITS",
    "VICTIM_INITS",
    "AttackScore",
    "Data",
    "PoisonAttack",
    "PoisonConfig",
    "PoisonSet",
    "StepStats",
    "Victim",
    "VictimConfig",
    "attack_score",
    "attacker_victims",
    "derived_seed",
    "epoch_orders",
    "evaluate_poisons",
    "held_out_victims",
    "outer_losses",
    "poisoned_set",
    "pretrain_orders",
    "pretrained_victim",
    "train_functional",
    "train_victim",
]
