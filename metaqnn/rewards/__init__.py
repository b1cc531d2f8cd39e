"""Rewards: what an architecture is worth. :mod:`.result` (the result type and the reward
protocols), :mod:`.real` (real-data training), :mod:`.gtn` (the GTN proxy) and :mod:`.spec`
(rewards built by name, for worker processes)."""
