"""Step 2 of the lifecycle: define the network. Specs are plain data; `build` makes the torch module."""

from kiln.models.spec import (
    MODEL_NAMES,
    CNNSpec,
    MLPSpec,
    ModelSpec,
    RNNSpec,
    cnn,
    mlp,
    rnn,
)

__all__ = ["MODEL_NAMES", "CNNSpec", "MLPSpec", "ModelSpec", "RNNSpec", "cnn", "mlp", "rnn"]
