"""What the experiments share beyond :mod:`experiments.harness`."""
