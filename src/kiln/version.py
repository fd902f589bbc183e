"""kiln's version, recorded in every model.json."""

__version__ = "0.1.0"
