"""Steps 3-4 of the lifecycle: compile (optimizer, loss, penalties) and train (the loop, callbacks, checkpoints)."""

from kiln.train.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar
from kiln.train.loop import Trainer
from kiln.train.state import TrainState
from kiln.train.strategy import DataParallel, SingleProcess, Strategy

__all__ = [
    "Callback",
    "Checkpoint",
    "DataParallel",
    "EarlyStopping",
    "ProgressBar",
    "SingleProcess",
    "Strategy",
    "TrainState",
    "Trainer",
]
