"""Experiments that reproduce the reference papers' tables and figures side by side; see
:mod:`experiments.harness` and ``experiments/RESULTS.md``."""
