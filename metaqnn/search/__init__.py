"""The search: the tabular Q-learner (:mod:`.agent`), its replay memory and epsilon schedule,
the search loop (:mod:`.loop`), its store, the workers that evaluate architectures, TensorBoard
logging, the report, and the agents MetaQNN is compared with (:mod:`.baselines`)."""
