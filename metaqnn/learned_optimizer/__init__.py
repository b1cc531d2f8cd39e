"""A learned optimizer for robustness (Metz et al. 2019): the optimizer (:mod:`.optimizer`), the
task it is meta-trained on (:mod:`.task`), its meta-training by evolution strategies (:mod:`.es`)
with its config and checkpoints (:mod:`.checkpoints`), the comparison of optimizers
(:mod:`.comparison`) and a run's evaluation against tuned Adam (:mod:`.evaluation`)."""
