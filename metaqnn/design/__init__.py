"""The main job: ``metaqnn design --dataset D --budget 2h``. Within a wall-clock budget, it
meta-trains (or reuses) a GTN teacher, runs the Q-learning search with the GTN reward at a
reduced search width, trains the best designs at full width with a strong final recipe beside
hand-designed baselines trained the same way, picks the winner by validation accuracy, and
writes the winner's checkpoint, a TorchScript export and a report.

:mod:`.budget` (durations and the split of the budget), :mod:`.presets` (per-dataset
defaults: hand-designed baselines, search width, teacher settings), :mod:`.pipeline` (the
resumable run) and :mod:`.report`.
"""
