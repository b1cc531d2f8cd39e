"""A learned optimizer for robustness (Metz et al. 2019): the optimizer (:mod:`.optimizer`), its
meta-training by evolution strategies (:mod:`.es`) and its evaluation (:mod:`.evaluation`)."""
