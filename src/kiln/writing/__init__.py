"""Writing: a small GPT trained on your own corpus, generation with a KV cache, streaming over HTTP."""

from kiln.writing.generator import Completion, Generator, Sampling, Stream

__all__ = ["Completion", "Generator", "Sampling", "Stream"]
