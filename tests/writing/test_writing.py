"""Text generation as a user drives it: train a tiny GPT on a corpus, evaluate it, generate (CLI, Python, HTTP),
resume an interrupted run, and the one-line errors for bad corpora and prompts."""

from __future__ import annotations

import json
import math
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import kiln
from kiln.cli import app
from kiln.writing import Generator

CORPUS = (
    "Return the number of items in the container.\n\n"
    "Return a new list of the items, sorted by their keys.\n\n"
    "Raise ValueError if the value is not found in the list.\n\n"
    "Return the string with the leading and trailing spaces removed.\n\n"
    "Open the file and return a stream; raise OSError on failure.\n\n"
    "Return True if all items of the iterable are true.\n\n"
    "Return the sum of a start value and the items of an iterable.\n\n"
) * 2
TINY = ("--context", "16", "--layers", "1", "--heads", "2", "--width", "32")


def _cli(*args: Any) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "docstrings.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_run(corpus: Path) -> Path:
    """`kiln train --task generate` on the tiny corpus, once for the module."""
    runs = corpus.parent / "runs"
    result = _cli("train", "--data", corpus, "--task", "generate", *TINY, "--max-steps", "60", "--name", "tiny",
                  "--runs-dir", runs, "--seed", "3", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Run folder: {runs / 'tiny'}" in result.output
    return runs / "tiny"


def test_train_writes_a_finished_run_folder(tiny_run: Path) -> None:
    files = {p.name for p in tiny_run.iterdir()}
    assert {"config.yaml", "model.json", "model.safetensors", "tokenizer.json", "history.csv", "metrics.json"} <= files
    assert {"curves.png", "report.html", "checkpoints"} <= files
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["steps"] == 60
    assert math.isclose(metrics["perplexity"], math.exp(metrics["loss"]))
    assert math.isclose(metrics["bits_per_char"], metrics["loss"] / math.log(2))  # one token per character
    vocab = len(set(CORPUS))
    assert metrics["loss"] < math.log(vocab)  # it learned something: better than a uniform guess
    history = (tiny_run / "history.csv").read_text().splitlines()
    assert history[0] == "step,loss,val_loss,lr,seconds" and len(history) > 2
    assert "<h2>Samples</h2>" in (tiny_run / "report.html").read_text()


def test_evaluate_recomputes_the_held_out_metrics(tiny_run: Path) -> None:
    result = _cli("evaluate", tiny_run, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    saved = json.loads((tiny_run / "metrics.json").read_text())
    for key in ("loss", "perplexity", "bits_per_char"):
        assert scores[key] == pytest.approx(saved[key], rel=1e-5)


def test_generate_cli_continues_the_prompt(tiny_run: Path) -> None:
    result = _cli("generate", tiny_run, "--prompt", "Return the", "--max-tokens", "25", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Return the")
    assert len(result.stdout.rstrip("\n")) == len("Return the") + 25
    assert set(result.stdout) <= set(CORPUS)
    assert "(25 tokens, length)" in result.stderr


def test_same_seed_same_text(tiny_run: Path) -> None:
    generator = kiln.load(str(tiny_run))
    assert isinstance(generator, Generator)
    first = generator.generate("Return", max_tokens=40, seed=7, temperature=1.0, top_k=None)
    again = generator.generate("Return", max_tokens=40, seed=7, temperature=1.0, top_k=None)
    other = generator.generate("Return", max_tokens=40, seed=8, temperature=1.0, top_k=None)
    assert first.text == again.text and first.tokens == 40
    assert other.text != first.text


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_kv_cache_gives_the_same_tokens_as_recomputing(tiny_run: Path, runtime: str) -> None:
    generator = Generator.load(tiny_run, runtime=runtime)  # type: ignore[arg-type]
    assert generator.runtime == runtime
    # 70 tokens after a 10-token prompt: the 16-token window fills and restarts several times
    cached = generator.generate("Return the", max_tokens=70, temperature=0)
    recomputed = generator.generate("Return the", max_tokens=70, temperature=0, cache=False)
    assert cached.text == recomputed.text and len(cached.text) == 70


def test_onnx_runtime_gives_torch_logits_and_tokens(tiny_run: Path) -> None:
    from kiln.writing.decoders import OnnxDecoder, TorchDecoder

    meta = json.loads((tiny_run / "model.json").read_text())
    assert meta["onnx"]["file"] == "model.onnx" and meta["onnx"]["max_abs_diff"] < 1e-5
    assert meta["onnx"]["weights_sha256"] == meta["weights"]["sha256"]
    onnx, torch = kiln.load(str(tiny_run)), Generator.load(tiny_run, runtime="torch")
    assert isinstance(onnx, Generator) and onnx.runtime == "onnx" and torch.runtime == "torch"
    assert onnx.step is not None
    ids = onnx.tokenizer.encode("Return the")
    decoders = OnnxDecoder(onnx.step), TorchDecoder(torch.model)
    pairs = [[d.start(ids) for d in decoders]]
    for token in onnx.tokenizer.encode(" numbe"):  # up to the 16-token context, one at a time
        pairs.append([d.next(token) for d in decoders])
    assert max(float(abs(a - b).max()) for a, b in pairs) < 1e-4
    for sampling in ({"temperature": 0}, {"temperature": 1.0, "top_k": None, "seed": 4}, {"top_p": 0.9, "seed": 5}):
        completions = [g.generate("Return the", max_tokens=50, **sampling) for g in (onnx, torch)]
        assert completions[0].text == completions[1].text and completions[0].tokens == 50


def test_altered_model_onnx_is_refused_until_exported_again(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    expected = kiln.load(str(tiny_run)).generate("Return", max_tokens=20, seed=2).text
    (run / "model.onnx").write_bytes((run / "model.onnx").read_bytes()[:-1] + b"\x00")
    result = _cli("generate", run, "--prompt", "Return", "--max-tokens", "20", "--seed", "2")
    assert result.exit_code == 2
    assert "model.onnx` is corrupted: its sha256 does not match model.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    exported = _cli("export", run)
    assert exported.exit_code == 0, exported.output
    assert f"Wrote {run / 'model.onnx'}" in exported.stdout
    result = _cli("generate", run, "--prompt", "Return", "--max-tokens", "20", "--seed", "2")
    assert result.exit_code == 0 and result.stdout == "Return" + expected + "\n"


def test_stop_sequence_ends_the_text_before_it(tiny_run: Path) -> None:
    generator = kiln.load(str(tiny_run))
    free = generator.generate("Return", max_tokens=60, temperature=0).text
    stop = free[10:12]
    stopped = generator.generate("Return", max_tokens=60, temperature=0, stop=[stop])
    assert stopped.finish_reason == "stop"
    assert stopped.text == free[: free.index(stop)]


def test_resume_continues_to_the_uninterrupted_result(
    corpus: Path, tmp_path: Path, kiln_popen: Callable[..., Any], kiln_cmd: Callable[..., Any]
) -> None:
    args = ("train", "--data", corpus, "--task", "generate", *TINY, "--max-steps", "120", "--runs-dir", tmp_path,
            "--set", "train.eval_every=20", "--set", "train.precision=bf16", "--quiet")  # fmt: skip
    whole = kiln_cmd(*args, "--name", "whole")
    assert whole.returncode == 0, whole.stderr
    proc = kiln_popen(*args, "--name", "cut")
    checkpoint = tmp_path / "cut" / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "kiln train --resume" in err and not (tmp_path / "cut" / "model.json").exists()
    resumed = kiln_cmd("train", "--resume", tmp_path / "cut", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "cut" / "model.safetensors").read_bytes() == (
        tmp_path / "whole" / "model.safetensors"
    ).read_bytes()
    cut, full = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("cut", "whole"))
    assert cut["loss"] == full["loss"] and cut["steps"] == full["steps"] == 120


def test_bf16_matmuls_train_on_par_and_fp32_turns_them_off(corpus: Path, tmp_path: Path) -> None:
    losses = {}
    for precision in ("bf16", "fp32"):
        result = _cli("train", "--data", corpus, "--task", "generate", *TINY, "--max-steps", "30", "--runs-dir",
                      tmp_path, "--name", precision, "--seed", "3", "--set", f"train.precision={precision}")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"up to 30 steps; {precision} matmuls." in result.output
        losses[precision] = json.loads((tmp_path / precision / "metrics.json").read_text())["loss"]
    weights = [(tmp_path / p / "model.safetensors").read_bytes() for p in losses]
    assert weights[0] != weights[1]  # different arithmetic, so not the same run
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.05)  # ... to the same loss


def test_gpt_under_bf16_autocast_gives_fp32_logits_close_to_fp32() -> None:
    import torch

    from kiln.models.gpt import GPT, Spec

    torch.manual_seed(0)
    model = GPT(Spec(context=16, layers=2, heads=2, width=32), vocab=40)
    idx = torch.randint(40, (3, 16))
    exact = model(idx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(idx)
    assert mixed.dtype == torch.float32 and mixed.shape == (3, 16, 40)
    assert (mixed - exact).abs().max() < 0.05
    mixed.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_bpe_tokenizer_encodes_any_prompt(corpus: Path, tmp_path: Path) -> None:
    result = _cli("train", "--data", corpus, "--task", "generate", "--tokenizer", "bpe", "--set", "data.vocab_size=300",
                  *TINY, "--max-steps", "5", "--runs-dir", tmp_path, "--name", "bpe", "--quiet",
                  "--set", "evaluate.onnx=false")  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "bpe" / "model.json").read_text())
    assert meta["schema"]["tokenizer"] == "bpe"
    assert "onnx" not in meta and not (tmp_path / "bpe" / "model.onnx").exists()  # so it generates in torch
    generator = kiln.load(str(tmp_path / "bpe"))
    assert isinstance(generator, Generator) and generator.runtime == "torch"
    completion = generator.generate("Größe €", max_tokens=10, seed=0)
    assert completion.tokens == 10 and isinstance(completion.text, str)
    with pytest.raises(kiln.RunError, match=r"has no ONNX export \(model.json has no `onnx` entry\)"):
        Generator.load(tmp_path / "bpe", runtime="onnx")


def test_generate_over_http_whole_and_streamed(tiny_run: Path, server_factory: Callable[..., Any]) -> None:
    server = server_factory(tiny_run, "--max-tokens", "50")
    body = {"prompt": "Return the", "max_tokens": 30, "temperature": 0.8, "seed": 5}
    whole = httpx.post(server.url + "/v1/generate", json=body)
    assert whole.status_code == 200, whole.text
    answer = whole.json()
    assert answer["tokens"] == 30 and answer["finish_reason"] == "length" and len(answer["text"]) == 30
    assert answer["text"] == kiln.load(str(tiny_run)).generate(**body).text  # the same code path as Python

    with httpx.stream("POST", server.url + "/v1/generate", json={**body, "stream": True}) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in streamed.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    pieces = [json.loads(e) for e in events[:-1]]
    assert "".join(p["text"] for p in pieces[:-1]) == answer["text"]
    assert pieces[-1] == {"finish_reason": "length", "tokens": 30}

    too_many = httpx.post(server.url + "/v1/generate", json={"prompt": "R", "max_tokens": 51})
    assert too_many.status_code == 422 and too_many.json()["field"] == "max_tokens"
    assert "between 1 and 50" in too_many.json()["message"]
    unknown = httpx.post(server.url + "/v1/generate", json={"prompt": "Return ü ☃"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "prompt"
    assert "'ü', '☃'" in unknown.json()["message"]
    wrong_type = httpx.post(server.url + "/v1/generate", json={"prompt": "R", "temperature": "hot"})
    assert wrong_type.status_code == 422 and wrong_type.json()["field"] == "temperature"
    predict = httpx.post(server.url + "/v1/predict", json={"inputs": [[1]]})
    assert predict.status_code == 404 and "/v1/generate" in predict.json()["message"]
    model = httpx.get(server.url + "/v1/model").json()
    assert model["task"] == "generate" and model["runtime"] == "onnx"


@pytest.mark.parametrize(
    ("content", "extra", "pattern"),
    [
        ("", (), "has no text"),
        (b"\x00\x01binary\x00", (), "is a binary file"),
        ("short text here.", (), r"`model.context` 16 is larger than the corpus allows"),
        (CORPUS, ("--heads", "3"), r"width 32 must be a multiple of heads 3"),
    ],
    ids=["empty", "binary", "context-too-long", "heads"],
)
def test_bad_corpus_is_one_line(tmp_path: Path, content: str | bytes, extra: tuple[str, ...], pattern: str) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = _cli("train", "--data", path, "--task", "generate", *TINY, *extra, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kiln: error:")
    assert re.search(pattern, lines[0]), lines[0]


def test_prompt_outside_the_vocabulary_is_named(tiny_run: Path) -> None:
    result = _cli("generate", tiny_run, "--prompt", "Return ü")
    assert result.exit_code == 2
    assert "1 character(s) the model never saw ('ü')" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_python_fit_trains_a_generator(corpus: Path, tmp_path: Path) -> None:
    spec = kiln.model("gpt", context=16, layers=1, heads=2, width=32)
    run = kiln.fit(spec, str(corpus), task="generate", max_steps=5, runs_dir=tmp_path, name="py", quiet=True)
    assert run.metrics["steps"] == 5 and (tmp_path / "py" / "model.json").is_file()
    assert isinstance(kiln.load(str(run.path)), Generator)
