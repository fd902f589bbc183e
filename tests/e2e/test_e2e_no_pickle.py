"""No pickle: no source file can unpickle, and no artifact is a pickle (DESIGN principle 3)."""

from __future__ import annotations

import ast
from pathlib import Path

import kiln

SRC = Path(kiln.__file__).resolve().parent
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def problems(path: Path) -> list[str]:
    """Imports of pickling modules, `torch.load` without weights_only=True, numpy loads with allow_pickle=True."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLERS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLERS:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            kwargs = {k.arg: k.value for k in node.keywords}
            if node.func.attr == "load" and owner == "torch" and not _is_true(kwargs.get("weights_only")):
                found.append("torch.load without weights_only=True")
            if node.func.attr in ("load", "loads") and owner in PICKLERS:
                found.append(f"{owner}.{node.func.attr}")
            if node.func.attr == "load" and owner in ("np", "numpy") and _is_true(kwargs.get("allow_pickle")):
                found.append("np.load(allow_pickle=True)")
            if node.func.attr in ("read_pickle", "from_pickle"):
                found.append(node.func.attr)
    return found


def test_scanner_catches_the_patterns(tmp_path: Path) -> None:
    bad = tmp_path / "kiln_bad.py"
    bad.write_text(
        "import pickle\nfrom joblib import load\nimport torch, numpy as np\n"
        "torch.load('x')\ntorch.load('x', weights_only=False)\ntorch.load('x', weights_only=True)\n"
        "np.load('x', allow_pickle=True)\npickle.loads(b'')\n"
    )
    assert problems(bad) == [
        "import pickle",
        "from joblib import ...",
        "torch.load without weights_only=True",
        "torch.load without weights_only=True",
        "np.load(allow_pickle=True)",
        "pickle.loads",
    ]


def test_no_source_file_can_unpickle() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20  # the scan really covers the package
    assert [f"{f.relative_to(SRC)}: {p}" for f in files for p in problems(f)] == []


def test_artifacts_hold_no_pickle(digits_run: kiln.Run) -> None:
    """Every file of a run folder is JSON, YAML, CSV, PNG, HTML, ONNX or safetensors: none is a pickle stream."""
    for path in digits_run.path.rglob("*"):
        if path.is_file():
            head = path.read_bytes()[:2]
            assert not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), path
            assert not path.read_bytes().startswith(b"PK\x03\x04"), path  # torch.save's zip container
