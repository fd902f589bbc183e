"""`kiln tune`: hyperparameter search with optuna; every trial is a normal run folder."""

from kiln.tune.study import Tuned, resume_tune, tune

__all__ = ["Tuned", "resume_tune", "tune"]
