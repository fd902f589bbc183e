"""Text generation from a trained GPT: the one code path behind `kiln generate`, `kiln.load(run).generate(...)`
and POST /v1/generate.

Each new token is fed alone through a KV cache. When the window reaches the model's context, it restarts
from the last half of it (one prefill), so memory and time per token stay bounded; without the cache the
same windows are recomputed from scratch at every step, which gives the same tokens, only slower. On the CPU
the model runs in ONNX Runtime (the run's model.onnx, its decode step), elsewhere in torch; tokens are picked
from the logits in NumPy either way, so a seed gives the same text on both runtimes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kiln.errors import InputError, RunError
from kiln.runs import RunFolder, sha256
from kiln.writing.decoders import Decoder, OnnxDecoder, TorchDecoder
from kiln.writing.tokenizer import FILE, Tokenizer, load_tokenizer

if TYPE_CHECKING:
    import onnxruntime

    from kiln.models.gpt import GPT

TASK = "generate"


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens: `temperature` 0 is greedy; `top_k`/`top_p` keep the likeliest tokens; `stop` ends the
    text before the first stop sequence; `max_tokens` and `max_seconds` cap the work."""

    max_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 40
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    max_seconds: float = 60.0
    cache: bool = True

    def check(self, max_tokens_limit: int | None = None) -> None:
        """Raise an InputError naming the first field out of range."""
        limit = max_tokens_limit
        if self.max_tokens < 1 or (limit is not None and self.max_tokens > limit):
            within = f"between 1 and {limit}" if limit is not None else "at least 1"
            raise InputError(f"`max_tokens` must be {within}; got {self.max_tokens}.", feature="max_tokens")
        if not self.temperature >= 0:
            raise InputError(
                f"`temperature` must be 0 (greedy) or more; got {self.temperature}.", feature="temperature"
            )
        if self.top_k is not None and self.top_k < 1:
            raise InputError(f"`top_k` must be a positive integer; got {self.top_k}.", feature="top_k")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise InputError(f"`top_p` must be in (0, 1]; got {self.top_p}.", feature="top_p")
        if not self.max_seconds > 0:
            raise InputError(f"`max_seconds` must be positive; got {self.max_seconds}.", feature="max_seconds")
        if any(not s for s in self.stop):
            raise InputError("`stop` sequences must not be empty.", feature="stop")


@dataclass
class Completion:
    """Generated text (without the prompt), its token count and why it ended: length, stop or time."""

    text: str
    tokens: int
    finish_reason: str
    seconds: float


@dataclass
class Stream:
    """The pieces of one generation as they are decoded; `tokens` and `finish_reason` are set as it goes."""

    pieces: Iterator[str]
    tokens: int = 0
    finish_reason: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def __iter__(self) -> Iterator[str]:
        return self.pieces


class Generator:
    """A trained GPT with its tokenizer: a prompt in, a continuation out (whole, or piece by piece). With `step`,
    an ONNX Runtime session of the model's decode step, the model runs there; else in torch."""

    def __init__(
        self,
        model: GPT,
        tokenizer: Tokenizer,
        name: str = "",
        version: str = "",
        step: onnxruntime.InferenceSession | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.version = version
        self.run: RunFolder | None = None
        self.step = step
        self.runtime = "torch" if step is None else "onnx"

    @classmethod
    def load(
        cls, path: str | Path, device: str = "cpu", runtime: Literal["auto", "onnx", "torch"] = "auto"
    ) -> Generator:
        """Load a finished `kiln train --task generate` run folder, verifying every file against model.json.

        `runtime`: `auto` runs ONNX Runtime when the device is the CPU and the run has a model.onnx, else torch;
        `onnx` insists on ONNX Runtime; `torch` never uses it.

        Example:
            >>> generator = kiln.load("runs/corpus-gpt")
            >>> print(generator.generate("The model", max_tokens=100, seed=1).text)
        """
        import torch
        from safetensors.torch import load as load_tensors

        from kiln.models import registry

        run = RunFolder(Path(path))
        meta = run.read_model_json()
        if not is_generator(meta):
            raise RunError(f"`{run.path}` is not a text generator (trained with `--task generate`).")
        try:
            schema, recorded = meta["schema"], meta["preprocessing"]["tokenizer"]
            spec = registry.parse(meta["model"])
            vocab = int(schema["vocab_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"`{run.model_json}` is corrupted: {exc!r}.") from None
        tokenizer_path = run.path / FILE
        try:
            text = tokenizer_path.read_bytes()
        except FileNotFoundError:
            raise RunError(f"`{tokenizer_path}` is missing.") from None
        if sha256(text) != recorded.get("sha256"):
            raise RunError(f"`{tokenizer_path}` is corrupted: its sha256 does not match model.json.")
        tokenizer = load_tokenizer(text.decode("utf-8"), str(tokenizer_path))
        weights = meta["weights"]["sha256"]
        model = registry.build(spec, registry.Dims(spec.context, vocab))  # type: ignore[attr-defined]
        model.load_state_dict(load_tensors(run.read_weights(weights)))
        step = _step_session(run, meta, torch.device(device), runtime)
        generator = cls(model.to(torch.device(device)), tokenizer, run.name, str(weights)[:12], step)
        generator.run = run
        return generator

    @property
    def context(self) -> int:
        return int(self.model.spec.context)

    def generate(self, prompt: str, **sampling: Any) -> Completion:
        """The continuation of `prompt` (see `Sampling` for the keyword arguments).

        Raises:
            InputError: a sampling value out of range, or (character vocabulary) prompt characters it never saw.
        """
        stream = self.stream(prompt, **sampling)
        text = "".join(stream)
        assert stream.finish_reason is not None
        return Completion(text, stream.tokens, stream.finish_reason, time.perf_counter() - stream.started)

    def stream(self, prompt: str, max_tokens_limit: int | None = None, **sampling: Any) -> Stream:
        """The continuation of `prompt` piece by piece; arguments are checked now, before the first piece."""
        settings = Sampling(**{**sampling, "stop": tuple(sampling.get("stop") or ())})
        settings.check(max_tokens_limit)
        ids = self.tokenizer.encode(prompt)
        if not ids:
            ids = self._start()
        stream = Stream(iter(()))
        stream.pieces = self._pieces(ids, settings, stream)
        return stream

    def _start(self) -> list[int]:
        """The token an empty prompt starts from: a newline when the vocabulary has one, else token 0."""
        try:
            return self.tokenizer.encode("\n")[-1:] or [0]
        except InputError:
            return [0]

    def _pieces(self, prompt: list[int], settings: Sampling, stream: Stream) -> Iterator[str]:
        """Decode the tokens as they come; hold back text that may be the start of a stop sequence."""
        generated: list[int] = []
        sent = 0
        deadline = stream.started + settings.max_seconds
        stream.finish_reason = "length"
        for token in self.tokens(prompt, settings):
            generated.append(token)
            stream.tokens = len(generated)
            text = self.tokenizer.decode(generated)
            cut = _first_stop(text, settings.stop, sent)
            if cut is not None:
                stream.finish_reason = "stop"
                if cut > sent:
                    yield text[sent:cut]
                return
            safe = len(text) - _held_back(text, settings.stop)
            if safe > sent:
                yield text[sent:safe]
                sent = safe
            if time.perf_counter() > deadline and len(generated) < settings.max_tokens:
                stream.finish_reason = "time"
                break
        text = self.tokenizer.decode(generated)
        if len(text) > sent:
            yield text[sent:]

    def tokens(self, prompt: list[int], settings: Sampling) -> Iterator[int]:
        """New token ids after `prompt`, at most `settings.max_tokens`."""
        rng = np.random.default_rng(settings.seed)  # a fresh seed from the OS when None
        decoder: Decoder = TorchDecoder(self.model) if self.step is None else OnnxDecoder(self.step)
        ids = list(prompt)
        context = self.context
        start = max(0, len(ids) - context)
        logits = decoder.start(ids[start:])
        for n in range(settings.max_tokens):
            token = _pick(logits, settings, rng)
            yield token  # no torch context is open across this yield: the caller may be another thread next time
            if n + 1 == settings.max_tokens:
                return
            ids.append(token)
            if len(ids) - start > context:  # the window is full: restart it from its last half
                start = len(ids) - context // 2
                logits = decoder.start(ids[start:])
            elif settings.cache:
                logits = decoder.next(token)
            else:
                logits = decoder.start(ids[start:])


def _step_session(run: RunFolder, meta: dict[str, Any], device: Any, runtime: str) -> Any:
    """An ONNX Runtime session of the run's decode step when `runtime` and `device` call for one, else None.

    Raises:
        RunError: `runtime` is `onnx` but the device is not the CPU or the run has no model.onnx; or model.onnx
            is altered, tied to other weights, or not loadable.
    """
    from kiln.export.runtime import load_session, read_onnx

    if runtime == "torch" or (runtime == "auto" and "onnx" not in meta):
        return None
    if device.type != "cpu":
        if runtime == "onnx":
            raise RunError(f"ONNX Runtime generates on the CPU only; `{run.path}` was asked to run on {device}.")
        return None
    return load_session(run, read_onnx(run, meta))


def _pick(logits: np.ndarray, settings: Sampling, rng: np.random.Generator) -> int:
    """One token id from next-token logits: greedy at temperature 0, else sampled from the top-k / top-p tokens.

    NumPy, not torch: at a character vocabulary's size, a third of torch's time per pick (measured).
    """
    if settings.temperature == 0:
        return int(np.argmax(logits))
    k = settings.top_k
    if k is not None and k < logits.size:
        top = np.argpartition(logits, -k)[-k:]
        order = top[np.argsort(-logits[top], kind="stable")]  # the k likeliest, likeliest first
    else:
        order = np.argsort(-logits, kind="stable")
    scaled = logits[order].astype(np.float64) / settings.temperature
    probs = np.exp(scaled - scaled[0])
    if settings.top_p is not None and settings.top_p < 1:
        probs /= probs.sum()
        probs[np.cumsum(probs) - probs >= settings.top_p] = 0.0  # keep the smallest head holding top_p of the mass
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return int(order[min(index, len(order) - 1)])


def _first_stop(text: str, stops: tuple[str, ...], sent: int) -> int | None:
    """Where the first stop sequence in `text` begins (searching only text not yet known to be free of one)."""
    found = [i for s in stops if (i := text.find(s, max(0, sent - len(s) + 1))) >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters to hold back: the longest end of `text` that begins a stop sequence, or an
    incomplete UTF-8 character (byte-level BPE decodes half a character as U+FFFD)."""
    longest = max((n for s in stops for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
    return max(longest, 1 if text.endswith("\ufffd") else 0)


def is_generator(meta: dict[str, Any]) -> bool:
    """Whether a run's model.json describes a text generator."""
    schema = meta.get("schema")
    return isinstance(schema, dict) and schema.get("task") == TASK
