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
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kiln.errors import ConfigError, RunError, warn

FORMAT_VERSION = 1
REQUIRED_MODEL_KEYS = ("format", "model", "schema", "preprocessing", "weights")
MAX_NAME = 100
SECTIONS = ("data", "model", "train", "evaluate")  # the mappings in config.yaml
_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}", re.ASCII)


def check_run_name(name: str) -> str:
    """`name` if it is one safe folder name (no path, no hidden folder, not too long); a ConfigError otherwise."""
    if not _NAME.fullmatch(name):
        shown = repr(name) if len(name) <= 40 else f"{name[:40]!r}... ({len(name)} characters)"
        raise ConfigError(
            f"Invalid run name {shown}: expected one folder name of letters, digits, `-`, `_` and `.` "
            f"(not starting with `.`), at most {MAX_NAME} characters."
        )
    return name


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` via a temp file in the same folder and a rename: all or nothing.

    Raises:
        RunError: the file cannot be written (disk full, no permission, ...); no temp file is left.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        _replace(path, payload)
    except OSError as exc:
        raise RunError(f"Cannot write `{path}`: {exc.strerror or exc}.") from None


def _replace(path: Path, payload: bytes) -> None:
    """Write `payload` to a temp file next to `path` and rename it over `path`; a failure removes the temp file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; run files are as readable as any other
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
        if "checksum" not in meta:  # every model.json of this format has one: without it, edits go unnoticed
            raise RunError(f"`{self.model_json}` is corrupted: missing key(s) checksum.")
        if meta["checksum"] != _checksum(meta):
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

    def read_artifacts(self, names: Iterable[str]) -> dict[str, bytes]:
        """The named artifacts (plots, report) that are safe to hand out, by name; absent ones are left out.

        One that is a symbolic link, lies outside the folder, is not a regular file, or whose bytes
        differ from the sha256 model.json recorded at save is skipped with a KilnWarning naming it.
        A run saved before artifacts were hashed (no `artifacts` entry) gets every check but the hash.
        """
        recorded = self.read_model_json().get("artifacts")
        found = {}
        for name in names:
            path = self.path / name
            if not os.path.lexists(path):
                continue
            try:
                found[name] = self._read_artifact(path, recorded)
            except RunError as exc:
                warn(f"Not serving `{path}`: {exc}")
        return found

    def _read_artifact(self, path: Path, recorded: Any) -> bytes:
        """The bytes of one artifact, or a RunError saying why it cannot be trusted."""
        if path.is_symlink():
            raise RunError("it is a symbolic link; a run folder's files are never links.")
        if path.resolve().parent != self.path.resolve():
            raise RunError("it resolves outside the run folder.")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # no link swapped in since the check above
        except OSError as exc:
            raise RunError(f"it cannot be read ({exc.strerror}).") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise RunError("it is not a regular file.")
            data = f.read()
        if recorded is None:
            return data
        expected = recorded.get(path.name) if isinstance(recorded, dict) else None
        if expected is None:
            raise RunError("model.json records no sha256 for it, so it was not written by training.")
        if sha256(data) != expected:
            raise RunError("its sha256 does not match model.json (changed after training).")
        return data

    def read_config(self) -> dict[str, Any]:
        """config.yaml as a mapping of sections, read without validating keys (any kiln release's config reads).

        Raises:
            RunError: it cannot be read, is not UTF-8, not YAML, not a mapping, or a section is not a mapping
                (the top level also holds `preset`, a name).
        """
        import yaml

        try:
            raw = yaml.safe_load(_read_text(self.config) or "")
        except yaml.YAMLError as exc:
            raise RunError(f"`{self.config}` is damaged: not valid YAML: {_yaml_problem(exc)}.") from None
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise RunError(f"`{self.config}` is damaged: expected a mapping of sections, found {type(raw).__name__}.")
        for section, value in raw.items():
            if section in SECTIONS and not isinstance(value, dict):
                raise RunError(
                    f"`{self.config}` is damaged: section `{section}` must be a mapping, found {type(value).__name__}."
                )
        return raw

    def load_metrics(self) -> dict[str, Any]:
        """metrics.json as an object ({} when the run has none yet).

        Raises:
            RunError: it cannot be read, is not UTF-8, not JSON, or not a JSON object.
        """
        text = _read_text(self.metrics)
        if text is None:
            return {}
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunError(f"`{self.metrics}` is damaged: not valid JSON ({exc}).") from None
        if not isinstance(raw, dict):
            raise RunError(f"`{self.metrics}` is damaged: expected a JSON object, found {type(raw).__name__}.")
        return raw

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json as an object, or {} when it is missing or damaged (for displays that can do without it)."""
        try:
            return self.load_metrics()
        except RunError:
            return {}

    def read_history(self) -> list[dict[str, float]]:
        try:
            text = self.history.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(io.StringIO(text))]


def _read_text(path: Path) -> str | None:
    """The UTF-8 text of `path`, None when it does not exist; a RunError naming it when it cannot be read
    or is a symbolic link (the server hands metrics out: a link could point anywhere)."""
    if path.is_symlink():
        raise RunError(f"`{path}` is a symbolic link; kiln reads only the files training wrote.")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise RunError(f"`{path}` is damaged: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise RunError(f"`{path}` cannot be read: {exc.strerror}.") from None


def _yaml_problem(exc: Exception) -> str:
    """What a YAML parser found wrong, and where, in one line."""
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


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
    """Create a fresh run folder; a name that exists already gets a numeric suffix.

    Raises:
        ConfigError: `name` is not one safe folder name (see `check_run_name`).
        RunError: the folder cannot be created (no space, no permission, `runs_dir` is a file).
    """
    stem = check_run_name(name) if name is not None else f"{default_stem}-{datetime.now():%Y%m%d-%H%M%S}"
    root = Path(runs_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            path = root / (stem if i == 0 else f"{stem}-{i}")
            try:
                path.mkdir()
                return RunFolder(path)
            except FileExistsError:
                continue
    except OSError as exc:
        raise RunError(f"Cannot create a run folder in `{root}`: {exc.strerror}.") from None
    raise RunError(f"Could not create a run folder for `{stem}` in `{root}`: too many runs with that name.")


def list_runs(runs_dir: str | Path) -> list[RunFolder]:
    """Run folders under `runs_dir` (finished or not), oldest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file()]
    return [RunFolder(p) for p in sorted(folders, key=lambda p: p.stat().st_mtime)]
