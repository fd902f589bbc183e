"""The run folder: the contract between training and everything after it.

    runs/<name>/
      config.yaml  model.json  model.safetensors  history.csv  metrics.json
      curves.png  confusion_matrix.png  report.html  checkpoints/

Every file is written atomically (temp file + rename). `model.json` is written last, so a folder
without it is an unfinished run (resumable), never one that looks complete.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kiln.errors import RunError

FORMAT_VERSION = 1
REQUIRED_MODEL_KEYS = ("format", "model", "schema", "preprocessing", "weights")


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` via a temp file in the same folder and a rename: all or nothing."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a run folder's files are as readable as any other
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without changing it (Linux has it in /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _umask_once()


@functools.cache
def _umask_once() -> int:
    """Where /proc cannot tell: set and restore it once (process-wide for an instant), then remember it."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2) + "\n")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    config = property(lambda self: self.path / "config.yaml")
    model_json = property(lambda self: self.path / "model.json")
    weights = property(lambda self: self.path / "model.safetensors")
    history = property(lambda self: self.path / "history.csv")
    metrics = property(lambda self: self.path / "metrics.json")
    curves = property(lambda self: self.path / "curves.png")
    confusion = property(lambda self: self.path / "confusion_matrix.png")
    report = property(lambda self: self.path / "report.html")
    checkpoints = property(lambda self: self.path / "checkpoints")

    def is_finished(self) -> bool:
        return self.model_json.is_file()

    def read_model_json(self) -> dict[str, Any]:
        """model.json, checked for the keys and format version every consumer relies on."""
        if not self.path.is_dir():
            raise RunError(f"Run folder `{self.path}` does not exist.")
        if not self.is_finished():
            hint = " It has checkpoints: finish it with `kiln train --resume`." if self.checkpoints.is_dir() else ""
            raise RunError(f"`{self.path}` is not a finished run: model.json is missing.{hint}")
        try:
            meta = json.loads(self.model_json.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunError(f"`{self.model_json}` is corrupted: not valid JSON ({exc}).") from None
        missing = [key for key in REQUIRED_MODEL_KEYS if not isinstance(meta, dict) or key not in meta]
        if missing:
            raise RunError(f"`{self.model_json}` is corrupted: missing key(s) {', '.join(missing)}.")
        if meta["format"] != FORMAT_VERSION:
            raise RunError(
                f"`{self.model_json}` has format {meta['format']!r}; this kiln reads format {FORMAT_VERSION}."
            )
        if "checksum" in meta and meta["checksum"] != _checksum(meta):
            raise RunError(
                f"`{self.model_json}` is corrupted: its contents were changed after training (checksum mismatch)."
            )
        return meta

    def write_model_json(self, meta: dict[str, Any]) -> None:
        """Write model.json atomically with a checksum of its contents, so an edited file is caught on load."""
        body = {k: v for k, v in meta.items() if k != "checksum"}
        write_json(self.model_json, {**body, "checksum": _checksum(body)})

    def read_weights(self, expected_sha256: str) -> bytes:
        """The raw safetensors bytes, verified against the hash recorded in model.json."""
        try:
            data = self.weights.read_bytes()
        except FileNotFoundError:
            raise RunError(f"`{self.weights}` is missing.") from None
        if sha256(data) != expected_sha256:
            raise RunError(
                f"`{self.weights}` is corrupted: its sha256 does not match model.json "
                f"({len(data)} bytes on disk). Retrain or restore the file."
            )
        return data

    def read_metrics(self) -> dict[str, Any]:
        try:
            return json.loads(self.metrics.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def read_history(self) -> list[dict[str, float]]:
        try:
            text = self.history.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(io.StringIO(text))]


def _checksum(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return sha256(json.dumps(body, sort_keys=True).encode("utf-8"))


def history_csv(rows: list[dict[str, float]]) -> str:
    """One row per epoch as CSV text (columns from the first row)."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def new_run(runs_dir: str | Path, name: str | None, default_stem: str) -> RunFolder:
    """Create a fresh run folder; a name that exists already gets a numeric suffix."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    stem = name or f"{default_stem}-{datetime.now():%Y%m%d-%H%M%S}"
    for i in range(1000):
        path = root / (stem if i == 0 else f"{stem}-{i}")
        try:
            path.mkdir()
            return RunFolder(path)
        except FileExistsError:
            continue
    raise RunError(f"Could not create a run folder for `{stem}` in `{root}`: too many runs with that name.")


def list_runs(runs_dir: str | Path) -> list[RunFolder]:
    """Run folders under `runs_dir` (finished or not), oldest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file()]
    return [RunFolder(p) for p in sorted(folders, key=lambda p: p.stat().st_mtime)]
