"""Step 2 of the lifecycle: define the network. Specs are plain data; the registry builds the torch module.

`kiln.mlp`, `kiln.cnn` and `kiln.rnn` live in `kiln.models.factories`: here those names are the
built-in models' own modules.
"""

from kiln.models.factories import model
from kiln.models.registry import Dims, register_model
from kiln.models.spec import ModelSpec

__all__ = ["Dims", "ModelSpec", "model", "register_model"]
