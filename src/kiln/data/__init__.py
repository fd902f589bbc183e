"""Step 1 of the lifecycle: load data, split it, fit the preprocessing.

Only the light pieces are re-exported here, so that a `Predictor` importing the preprocessing
does not import the dataset readers; `kiln.data.load.load_data` is the entry point for reading.
"""

from kiln.data.dataset import Dataset
from kiln.data.preprocessing import Preprocessor
from kiln.data.schema import Schema

__all__ = ["Dataset", "Preprocessor", "Schema"]
