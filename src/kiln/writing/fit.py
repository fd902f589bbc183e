"""Training a GPT on a text corpus (`kiln train --task generate`), and scoring it again (`kiln evaluate`).

A language model trains in steps of random contiguous windows, not epochs over rows, so it has this loop of
its own; the run folder is every kiln run's: config.yaml, checkpoints/ (kiln's atomic, checksummed
checkpoint, so `--resume` continues exactly), history.csv, metrics.json, curves.png, report.html,
model.safetensors, plus tokenizer.json, model.onnx (the decode step that generation runs in ONNX Runtime on the
CPU; `evaluate.onnx`) and model.json written last.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from kiln import config as config_mod
from kiln.config import RunConfig
from kiln.data.corpus import Corpus, read_corpus
from kiln.errors import ConfigError, DataError, RunError, TrainingError, TrainingInterrupted, warn
from kiln.lifecycle import FinishedRun
from kiln.models import registry
from kiln.runs import FORMAT_VERSION, RunFolder, atomic_write, history_csv, new_run, sha256, write_json
from kiln.train.checkpoint import load_checkpoint, save_checkpoint
from kiln.train.device import cpu_threads, resolve_device
from kiln.train.state import TrainState
from kiln.version import __version__
from kiln.writing.export import export_step
from kiln.writing.generator import TASK, Generator
from kiln.writing.scoring import held_out_loss, text_metrics
from kiln.writing.tokenizer import FILE, Tokenizer, load_tokenizer, train_tokenizer

DEFAULT_STEPS = 2000
EVAL_WINDOWS = 256  # held-out windows scored at each evaluation during training
FINAL_WINDOWS = 2048  # ... and for metrics.json
SAMPLES = 4  # report samples, taken at evenly spread evaluations
SAMPLE_TOKENS = 200
BETAS = (0.9, 0.99)  # nanoGPT's character-level recipe: few tokens per step, so a longer second moment
MIN_LR_RATIO = 0.1


@dataclass
class TextRun(FinishedRun):
    """A finished text-generation run: its folder, config, history (one row per evaluation) and metrics."""


@dataclass(frozen=True)
class TextData:
    """A corpus split into training and held-out text, tokenized."""

    corpus: Corpus
    tokenizer: Tokenizer
    train: torch.Tensor
    held_out: torch.Tensor
    held_out_chars: int


def prepare_text(cfg: RunConfig, tokenizer: Tokenizer | None = None) -> TextData:
    """Read the corpus, split it (contiguous blocks), learn the tokenizer on the training split, encode both.

    Raises:
        DataError: an empty or binary corpus, or one too short for the model's context.
    """
    data = cfg.data
    corpus = read_corpus(data.source, data.target, data.encoding)
    train_text, held_text = corpus.split(data.test_size, data.seed)
    # characters: every character of the corpus (as nanoGPT), so the held-out text encodes; BPE: the training split's
    learned_from = corpus.text if data.tokenizer == "char" else train_text
    tokenizer = tokenizer or train_tokenizer(data.tokenizer, learned_from, data.vocab_size)
    train = torch.tensor(tokenizer.encode(train_text), dtype=torch.long)
    held = torch.tensor(tokenizer.encode(held_text), dtype=torch.long)
    context = cfg.model.context  # type: ignore[attr-defined]
    for side, ids in (("training", train), ("held-out", held)):
        if len(ids) <= context:
            raise DataError(
                f"`model.context` {context} is larger than the corpus allows: `{data.source}`'s {side} split has "
                f"{len(ids)} tokens ({len(corpus.text)} characters in all). Use a smaller `--context`, or more text."
            )
    return TextData(corpus, tokenizer, train, held, len(held_text))


def plan(cfg: RunConfig) -> RunConfig:
    """The config with every `auto` training key this loop reads resolved, checked for the model and task."""
    if cfg.model.name != "gpt":
        raise ConfigError(f"`--task generate` trains the `gpt` model; got `model.name` {cfg.model.name}.")
    t = cfg.train
    steps = t.max_steps or (None if t.max_minutes else DEFAULT_STEPS)
    horizon = steps or 10_000
    update = {
        "max_steps": steps,
        "batch_size": 12 if t.batch_size == "auto" else t.batch_size,
        "lr": 1e-3 if t.lr == "auto" else t.lr,
        "optimizer": "adamw" if t.optimizer == "auto" else t.optimizer,
        "weight_decay": 0.1 if t.weight_decay == "auto" else t.weight_decay,
        "schedule": "cosine" if t.schedule == "auto" else t.schedule,
        "clip_grad_norm": t.clip_grad_norm or 1.0,
        "warmup_steps": min(100, horizon // 10) if t.warmup_steps == "auto" else t.warmup_steps,
        "eval_every": max(1, min(250, horizon // 8)) if t.eval_every == "auto" else t.eval_every,
    }
    if update["optimizer"] != "adamw" or update["schedule"] not in ("cosine", "none"):
        raise ConfigError(
            "`--task generate` trains with AdamW and a cosine (or no) schedule; got "
            f"`train.optimizer` {update['optimizer']}, `train.schedule` {update['schedule']}."
        )
    return cfg.model_copy(update={"train": t.model_copy(update=update)})


def fit_text(cfg: RunConfig, runs_dir: str | Path = "runs", name: str | None = None, quiet: bool = False) -> TextRun:
    """Train a GPT on `cfg.data.source` and write a finished run folder."""
    cfg = plan(cfg)
    data = prepare_text(cfg)
    folder = new_run(runs_dir, name, f"{data.corpus.name}-gpt")
    atomic_write(folder.config, config_mod.to_yaml(cfg))
    atomic_write(folder.path / FILE, data.tokenizer.to_json())
    return _Loop(cfg, data, folder, quiet).run(resume=False)


def resume_text(path: str | Path, quiet: bool = False) -> TextRun:
    """Continue an interrupted text run from its last checkpoint, to the same result as an uninterrupted run."""
    folder = RunFolder(Path(path))
    cfg = plan(config_mod.load(folder.config))
    try:
        tokenizer = load_tokenizer((folder.path / FILE).read_text(encoding="utf-8"), str(folder.path / FILE))
    except FileNotFoundError:
        raise RunError(f"`{folder.path / FILE}` is missing: this run cannot be resumed; start it again.") from None
    for stale in [*folder.path.glob(".*.tmp"), *folder.checkpoints.glob(".*.tmp")]:
        stale.unlink()
    return _Loop(cfg, prepare_text(cfg, tokenizer), folder, quiet).run(resume=True)


def is_text_config(path: Path) -> bool:
    """Whether a run folder's config.yaml trains a text generator."""
    return RunFolder(path).read_config().get("data", {}).get("task") == TASK


class Windows:
    """Random contiguous windows (inputs, next tokens) of a token stream, from a seeded generator whose state is
    checkpointed, so a resumed run draws the same batches."""

    def __init__(self, ids: torch.Tensor, context: int, batch: int, seed: int) -> None:
        self.ids, self.batch = ids, batch
        self.offsets = torch.arange(context + 1, device=ids.device)
        self.last = len(ids) - context - 1  # the last start with a full window and its target
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(self.last + 1, (self.batch, 1), generator=self.generator).to(self.ids.device)
        rows = self.ids[starts + self.offsets]  # (B, context + 1)
        return rows[:, :-1], rows[:, 1:]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["rng"])


class Samples:
    """Text generated at a few evaluations, for the report (checkpointed with the run)."""

    def __init__(self) -> None:
        self.taken: list[list[Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"taken": self.taken}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.taken = [list(row) for row in state["taken"]]


@dataclass
class _Loop:
    """The training loop of one run; it has what kiln's checkpoint saves (model, optimizer, state, callbacks)."""

    cfg: RunConfig
    data: TextData
    folder: RunFolder
    quiet: bool

    def __post_init__(self) -> None:
        train, spec = self.cfg.train, self.cfg.model
        self.device = resolve_device(train.device)
        torch.manual_seed(train.seed)
        self.model = registry.build(spec, registry.Dims(spec.context, self.data.tokenizer.vocab_size))  # type: ignore[attr-defined]
        self.model.to(self.device)
        self.optimizer = adamw(self.model, float(train.lr), float(train.weight_decay), self.device)  # type: ignore[arg-type]
        self.scheduler = None
        self.state = TrainState()
        self.windows = Windows(self.data.train.to(self.device), spec.context, int(train.batch_size), train.seed)  # type: ignore[attr-defined]
        self.samples = Samples()
        self.callbacks = [self.windows, self.samples]
        self.held_out = self.data.held_out.to(self.device)
        self.bf16 = uses_bf16(train.precision, self.device)

    def run(self, resume: bool) -> TextRun:
        from rich.console import Console

        console = Console(quiet=self.quiet, highlight=False)
        if resume:
            load_checkpoint(self.folder.checkpoints, self)  # type: ignore[arg-type]
            console.print(f"Resuming {self.folder.name} after step {self.state.epoch}.")
        params = sum(p.numel() for p in self.model.parameters())
        console.print(
            f"Training gpt ({params / 1e6:.2f}M parameters, {self.data.tokenizer.kind} tokenizer of "
            f"{self.data.tokenizer.vocab_size} tokens) on {len(self.data.train):,} tokens, holding out "
            f"{len(self.data.held_out):,}; {self._limit()}; {'bf16' if self.bf16 else 'fp32'} matmuls.",
            soft_wrap=True,
        )
        try:
            with cpu_threads(self.cfg.train.threads if self.device.type == "cpu" else 0):
                self._train(console)
                metrics = self._final_metrics()
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"Interrupted; the checkpoint after step {self.state.epoch} is saved. "
                f"Continue with: kiln train --resume {self.folder.path}"
            ) from None
        self._save(metrics)
        console.print(
            f"Held-out loss {metrics['loss']:.4f}, perplexity {metrics['perplexity']:.2f}, "
            f"{metrics['bits_per_char']:.3f} bits per character after {int(metrics['steps'])} steps "
            f"({metrics['steps_per_second']:.1f} steps/s)."
        )
        return TextRun(self.folder, self.cfg, self.state.history, metrics)

    def _limit(self) -> str:
        t = self.cfg.train
        parts = [f"{t.max_steps} steps" if t.max_steps else "", f"{t.max_minutes:g} minutes" if t.max_minutes else ""]
        return "up to " + " or ".join(p for p in parts if p)

    def _train(self, console: Any) -> None:
        t = self.cfg.train
        seconds = self.state.history[-1]["seconds"] if self.state.history else 0.0
        step = self.state.epoch
        running = torch.zeros((), device=self.device)
        count = 0
        while not self._done(step, seconds):
            began = time.perf_counter()
            lr = self._lr(step, seconds)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            x, y = self.windows.next()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = self.model(x)  # fp32 logits (the model keeps its head in fp32)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(t.clip_grad_norm))  # type: ignore[arg-type]
            self.optimizer.step()
            running += loss.detach()  # no host sync per step: read once per evaluation
            count += 1
            step += 1
            seconds += time.perf_counter() - began
            if step % int(t.eval_every) == 0 or self._done(step, seconds):  # type: ignore[arg-type]
                self._evaluate(step, seconds, float(running) / count, lr, console)
                running.zero_()
                count = 0

    def _done(self, step: int, seconds: float) -> bool:
        t = self.cfg.train
        return (t.max_steps is not None and step >= t.max_steps) or (
            t.max_minutes is not None and seconds >= t.max_minutes * 60
        )

    def _lr(self, step: int, seconds: float) -> float:
        """Linear warm-up, then cosine decay to a tenth over the run (by steps, or by time with --max-minutes)."""
        t = self.cfg.train
        peak = float(t.lr)  # type: ignore[arg-type]
        warmup = int(t.warmup_steps)  # type: ignore[arg-type]
        if step < warmup:
            return peak * (step + 1) / (warmup + 1)
        if t.schedule == "none":
            return peak
        done = max(
            (step - warmup) / max(1, t.max_steps - warmup) if t.max_steps else 0.0,
            seconds / (t.max_minutes * 60) if t.max_minutes else 0.0,
        )
        return peak * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * min(1.0, done))))

    def _evaluate(self, step: int, seconds: float, train_loss: float, lr: float, console: Any) -> None:
        """Score the held-out split, maybe take a sample, checkpoint; one history row."""
        if not math.isfinite(train_loss):
            raise TrainingError(
                f"The training loss became {train_loss} by step {step}: lower `--lr` (now {self.cfg.train.lr})."
            )
        self.model.eval()
        val = held_out_loss(self.model, self.held_out, self.model.spec.context, EVAL_WINDOWS)
        if self._sample_due(step):
            self.samples.taken.append([step, self._sample()])
        self.model.train()
        row = {"step": float(step), "loss": train_loss, "val_loss": val, "lr": lr, "seconds": seconds}
        self.state.history.append(row)
        self.state.epoch = step
        save_checkpoint(self.folder.checkpoints, self)  # type: ignore[arg-type]
        console.print(
            f"step {step:>6}  loss {train_loss:.4f}  held-out {val:.4f}  lr {lr:.2e}  {seconds:7.1f}s training"
        )

    def _sample_due(self, step: int) -> bool:
        """At evaluations spread over the run: the first, the last, and between (by steps planned)."""
        t = self.cfg.train
        every = int(t.eval_every)  # type: ignore[arg-type]
        if not t.max_steps:
            return len(self.samples.taken) < SAMPLES or self._done(step, 0.0)
        evals = max(1, math.ceil(t.max_steps / every))
        marks = {round(i * (evals - 1) / (SAMPLES - 1)) for i in range(SAMPLES)}
        return (math.ceil(step / every) - 1) in marks or step >= t.max_steps

    def _sample(self) -> str:
        generator = Generator(self.model, self.data.tokenizer)
        text = generator.generate("", max_tokens=SAMPLE_TOKENS, temperature=0.8, top_k=40, seed=0).text
        self.model.train()
        return text

    def _final_metrics(self) -> dict[str, Any]:
        self.model.eval()
        loss = held_out_loss(self.model, self.held_out, self.model.spec.context, FINAL_WINDOWS)
        history = self.state.history
        seconds = history[-1]["seconds"] if history else 0.0
        return {
            **text_metrics(loss, len(self.held_out), self.data.held_out_chars),
            "train_loss": history[-1]["loss"] if history else float("nan"),
            "steps": float(self.state.epoch),
            "fit_seconds": seconds,
            "steps_per_second": self.state.epoch / seconds if seconds else 0.0,
            "vocab_size": float(self.data.tokenizer.vocab_size),
            "train_tokens": float(len(self.data.train)),
            "held_out_tokens": float(len(self.held_out)),
        }

    def _save(self, metrics: dict[str, Any]) -> None:
        """Weights, history, metrics, curves, report; model.json last."""
        from safetensors.torch import save as save_tensors

        from kiln.writing.report import plot_loss, write_report

        folder = self.folder
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        weights = save_tensors(state)
        weights_sha256 = sha256(weights)
        atomic_write(folder.weights, weights)
        atomic_write(folder.history, history_csv(self.state.history))
        write_json(folder.metrics, metrics)
        written = []
        if self.cfg.evaluate.plots:
            plot_loss(self.state.history, folder.curves)
            written.append(folder.curves)
        if self.cfg.evaluate.report:
            write_report(folder, metrics, self.samples.taken, config_mod.to_yaml(self.cfg))
            written.append(folder.report)
        tokenizer = (folder.path / FILE).read_bytes()
        exported = {}
        if self.cfg.evaluate.onnx:
            try:
                exported["onnx"] = export_step(folder, self.model, weights_sha256=weights_sha256)
            except RunError as exc:  # the run is trained and complete; it generates with torch instead
                warn(f"{exc} The run is complete without model.onnx.")
        folder.write_model_json(
            {
                "format": FORMAT_VERSION,
                "kiln_version": __version__,
                "torch_version": torch.__version__.split("+")[0],
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "data": self.data.corpus.name,
                "model": self.cfg.model.model_dump(mode="json"),
                "schema": {
                    "task": TASK,
                    "tokenizer": self.data.tokenizer.kind,
                    "vocab_size": self.data.tokenizer.vocab_size,
                    "context": self.model.spec.context,
                },
                "preprocessing": {"tokenizer": {"file": FILE, "sha256": sha256(tokenizer)}},
                "weights": {"file": folder.weights.name, "sha256": weights_sha256},
                "artifacts": {path.name: sha256(path.read_bytes()) for path in written},
                **exported,
            }
        )


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether training runs its matmuls in bf16 (autocast; weights, optimizer, held-out scoring and generation stay
    fp32): `auto` where the hardware has bf16 arithmetic (a CUDA GPU; a CPU with AVX-512 BF16 or AMX, where it
    trains the recipe's GPT 1.4-1.8x faster at the same loss, measured), `bf16` always, `fp32` never."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def adamw(model: torch.nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only (not norms or biases), fused where torch has it."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, fused=device.type in ("cpu", "cuda"))


def evaluate_text(path: str | Path) -> dict[str, Any]:
    """Held-out loss, perplexity and bits per character of a finished run, recomputed from its folder and corpus."""
    generator = Generator.load(path, runtime="torch")  # scoring runs the torch model
    assert generator.run is not None
    cfg = plan(config_mod.load(generator.run.config))
    data = prepare_text(cfg, generator.tokenizer)
    loss = held_out_loss(generator.model, data.held_out, generator.context, FINAL_WINDOWS)
    return text_metrics(loss, len(data.held_out), data.held_out_chars)
