"""Experiment tracking: TensorBoard and MLflow trackers for `train.track`, and kiln's MLflow pyfunc flavour.

Trackers themselves (`kiln.tracking.tracker.Tracker`, ...) are imported where a run opens them: this package
stays free of torch, so that MLflow's child process (`kiln.tracking.mlflow_logger`) starts fast.
"""

from kiln.tracking.trackers import BACKENDS, check, open_trackers

__all__ = ["BACKENDS", "check", "open_trackers"]
