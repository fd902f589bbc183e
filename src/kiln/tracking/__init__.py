"""Experiment tracking: TensorBoard and MLflow trackers for `train.track`, and kiln's MLflow pyfunc flavour."""

from kiln.tracking.tracker import Tracker
from kiln.tracking.trackers import BACKENDS, check, open_trackers

__all__ = ["BACKENDS", "Tracker", "check", "open_trackers"]
