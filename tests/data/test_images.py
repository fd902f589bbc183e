"""Image folders a user brings: one subfolder per class, grayscale or RGB, resized, corrupt files listed or skipped.

Images are small PNGs written with Pillow into tmp_path; each class has its own bright band so a
model can tell them apart in one or two epochs.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assertions import nothing_in, one_error_line
from PIL import Image

import kiln
from kiln.errors import KilnWarning

NO_PLOTS = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false")


def make_folder(
    root: Path, counts: dict[str, int], *, size: tuple[int, int] = (12, 10), rgb_every: int = 0, seed: int = 0
) -> Path:
    """`root/<class>/<i>.png`: noise with a bright band whose row depends on the class; every `rgb_every`-th is RGB."""
    rng = np.random.default_rng(seed)
    width, height = size
    for k, (name, n) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = (rng.random((height, width)) * 100).astype(np.uint8)
            band = k * height // len(counts)
            pixels[band : band + max(1, height // len(counts))] = 255
            if rgb_every and i % rgb_every == 0:
                Image.fromarray(np.stack([pixels, pixels // 2, pixels // 3], axis=-1)).save(folder / f"{i}.png")
            else:
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def train(cli: Callable[..., Any], folder: Path, runs: Path, name: str, *args: str) -> Path:
    result = cli(
        "train",
        "--data",
        folder,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--runs-dir",
        runs,
        "--name",
        name,
        "--quiet",
        *NO_PLOTS,
        *args,
    )
    assert result.returncode == 0, result.stderr
    return runs / name


def model_json(run: Path) -> dict[str, Any]:
    return json.loads((run / "model.json").read_text())


# --- reading ---------------------------------------------------------------------------------


def test_grayscale_folder_trains_with_classes_from_subfolder_names(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "shapes", {"square": 20, "circle": 20, "line": 20})
    run = train(cli, folder, tmp_path / "runs", "gray")
    schema = model_json(run)["schema"]
    assert schema["classes"] == ["circle", "line", "square"]
    assert schema["image_shape"] == [1, 10, 12]  # (channels, height, width)
    assert len(schema["features"]) == 120
    metrics = json.loads((run / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == 12  # 20% of 60 images


def test_an_image_folder_gets_a_cnn_unless_a_model_is_named(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "shapes", {"square": 10, "circle": 10})
    assert model_json(train(cli, folder, tmp_path / "runs", "auto"))["model"]["name"] == "cnn"
    assert model_json(train(cli, folder, tmp_path / "runs", "named", "--model", "mlp"))["model"]["name"] == "mlp"


def test_a_folder_with_any_rgb_image_is_read_as_rgb(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 10, "b": 10}, rgb_every=3)
    data = kiln.load_data(str(folder))
    assert data.schema.image_shape == (3, 10, 12)
    assert data.x_train.shape[1] == 3 * 10 * 12
    # a grayscale image is copied into all three channels
    gray = np.asarray(Image.open(folder / "a" / "1.png"), dtype=np.float32)
    rows = np.concatenate([data.x_train, data.x_test]).reshape(-1, 3, 10, 12)
    match = [r for r in rows if np.array_equal(r[0], gray)]
    assert len(match) == 1 and np.array_equal(match[0][1], gray) and np.array_equal(match[0][2], gray)


def test_image_size_resizes_every_image(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 12, "b": 12}, size=(12, 10))
    make_folder(tmp_path / "pics", {"a": 3}, size=(20, 20), seed=1)  # overwrites a/0-2.png with a larger size
    data = kiln.load_data(str(folder), image_size=6)
    assert data.schema.image_shape == (1, 6, 6)
    assert data.x_train.shape[1] == 36
    run = train(cli, folder, tmp_path / "runs", "small", "--image-size", "6")
    assert model_json(run)["schema"]["image_shape"] == [1, 6, 6]
    assert "image_size: 6" in (run / "config.yaml").read_text()


def test_without_image_size_the_most_common_size_wins(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 12, "b": 12}, size=(12, 10))
    make_folder(tmp_path / "pics", {"a": 3}, size=(20, 20), seed=1)
    assert kiln.load_data(str(folder)).schema.image_shape == (1, 10, 12)


def test_hidden_folders_and_non_image_files_are_ignored(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 10, "b": 10})
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / "a" / "notes.txt").write_text("not an image")
    (folder / "README.md").write_text("two classes")
    data = kiln.load_data(str(folder))
    assert data.schema.classes == ["a", "b"]
    assert len(data.y_train) + len(data.y_test) == 20


def test_cnn_trains_on_an_image_folder_and_predicts_a_single_image(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 16, "b": 16}, size=(8, 8))
    run = train(cli, folder, tmp_path / "runs", "cnn", "--model", "cnn")
    assert model_json(run)["model"]["name"] == "cnn"
    result = cli("predict", run, folder / "a" / "3.png")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert len(rows) == 1 and rows[0]["file"] == str(folder / "a" / "3.png")
    assert float(rows[0]["p_a"]) + float(rows[0]["p_b"]) == pytest.approx(1.0, abs=2e-6)


# --- predict and evaluate with the run's image mode and size ---------------------------------


def test_predict_on_a_folder_resizes_and_converts_like_training(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 16, "b": 16})
    run = train(cli, folder, tmp_path / "runs", "gray", "--image-size", "8")
    new = make_folder(tmp_path / "new", {"unsorted": 3}, size=(30, 24), rgb_every=2, seed=5)
    out = tmp_path / "out.csv"
    result = cli("predict", run, new, "-o", out)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert list(rows[0]) == ["file", "label", "p_a", "p_b"]
    assert [Path(r["file"]).name for r in rows] == ["0.png", "1.png", "2.png"]


def test_evaluate_on_a_labelled_folder_scores_every_image(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 16, "b": 16})
    run = train(cli, folder, tmp_path / "runs", "gray", "--epochs", "3")
    result = cli("evaluate", run, "--data", folder, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert sum(map(sum, metrics["confusion_matrix"])) == 32
    assert metrics["accuracy"] >= 0.75  # the bands are easy to tell apart


def test_predict_on_an_image_with_a_table_model_is_an_error(cli: Callable[..., Any], tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("x,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(40)))
    run = train(cli, table, tmp_path / "runs", "table", "--target", "y")
    image = make_folder(tmp_path / "pics", {"a": 1}) / "a" / "0.png"
    one_error_line(
        cli("predict", run, image), r"`\S*0\.png` holds images but this model was trained on 1 tabular features\.$"
    )


def test_predict_on_a_truncated_image_names_the_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 16, "b": 16})
    run = train(cli, folder, tmp_path / "runs", "gray")
    new = make_folder(tmp_path / "new", {"x": 3}, seed=2)
    bad = truncate(new / "x" / "1.png")
    out = tmp_path / "out.csv"
    one_error_line(cli("predict", run, new, "-o", out), rf"Image `{re.escape(str(bad))}` is unreadable: ")
    assert not out.exists()


# --- bad folders -----------------------------------------------------------------------------


def test_folder_without_class_subfolders(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / f"{i}.png")
    runs = tmp_path / "runs"
    one_error_line(
        cli("train", "--data", folder, "--runs-dir", runs),
        rf"`{re.escape(str(folder))}` has no class subfolders: expected one folder per class \(e\.g\. \S*flat/cat/1\.png\)\.$",
    )
    assert nothing_in(runs)


def test_folder_with_an_empty_class(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 5})
    (folder / "b").mkdir()
    (folder / "b" / "notes.txt").write_text("images go here")
    runs = tmp_path / "runs"
    one_error_line(
        cli("train", "--data", folder, "--runs-dir", runs),
        rf"Class folder `{re.escape(str(folder / 'b'))}` has no images \(\.bmp, \.jpeg, \.jpg, \.png\)\.$",
    )
    assert nothing_in(runs)


def test_folder_with_a_single_class_is_an_error(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"cats": 20})
    runs = tmp_path / "runs"
    # Like a table whose target has one class: there is nothing to classify (not a 1-class model, "accuracy 1.0").
    one_error_line(
        cli("train", "--data", folder, "--batch-size", "4", "--runs-dir", runs),
        r"`\S*pics` has a single class \('cats'\); classification needs at least 2\.$",
    )
    assert nothing_in(runs)


def test_truncated_png_is_listed_with_its_path_and_reason(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 10, "b": 10})
    bad = truncate(folder / "b" / "4.png")
    runs = tmp_path / "runs"
    one_error_line(
        cli("train", "--data", folder, "--runs-dir", runs),
        rf"^kiln: error: 1 unreadable image file\(s\): {re.escape(str(bad))} \(image file is truncated\)\. "
        r"Fix or remove them, or pass --skip-bad-files\.$",
    )
    assert nothing_in(runs)


def test_every_corrupt_file_is_counted_and_the_first_five_listed(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 10, "b": 10})
    for i in range(4):
        truncate(folder / "a" / f"{i}.png")
    for i in range(3):
        (folder / "b" / f"{i}.png").write_bytes(b"this is not a PNG")
    line = one_error_line(
        cli("train", "--data", folder, "--runs-dir", tmp_path / "runs"), r"7 unreadable image file\(s\)"
    )
    assert line.count("(image file is truncated)") == 4
    assert f"{folder / 'b' / '0.png'} (cannot identify image file" in line
    assert line.endswith(" and 2 more. Fix or remove them, or pass --skip-bad-files.")


def test_skip_bad_files_trains_on_the_readable_images(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 10, "b": 10})
    first = truncate(folder / "a" / "2.png")
    second = folder / "b" / "9.png"
    second.write_bytes(b"GIF89a")
    with pytest.warns(KilnWarning, match=r"^Skipped 2 unreadable image file\(s\): ") as caught:
        data = kiln.load_data(str(folder), skip_bad_files=True)
    assert len(data.y_train) + len(data.y_test) == 18
    message = str(caught[0].message)
    assert f"{first} (image file is truncated)" in message and f"{second} (cannot identify image file" in message


def test_skip_bad_files_says_which_files_it_skipped(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 10, "b": 10})
    bad = truncate(folder / "a" / "2.png")
    runs = tmp_path / "runs"
    result = cli(
        "train",
        "--data",
        folder,
        "--skip-bad-files",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--runs-dir",
        runs,
        "--name",
        "skip",
        "--quiet",
        *NO_PLOTS,
    )
    assert result.returncode == 0, result.stderr
    assert (runs / "skip" / "model.json").is_file()
    # A skipped file is something kiln handled for the user: one warning naming it and why.
    warnings = [line for line in result.stderr.splitlines() if line.startswith("kiln: warning: ")]
    assert len(warnings) == 1, result.stderr
    assert str(bad) in warnings[0] and "truncated" in warnings[0]


def test_a_class_whose_images_are_all_unreadable_is_an_error_even_when_skipping(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    folder = make_folder(tmp_path / "pics", {"a": 10, "b": 3})
    for i in range(3):
        truncate(folder / "b" / f"{i}.png")
    runs = tmp_path / "runs"
    result = cli("train", "--data", folder, "--skip-bad-files", "--runs-dir", runs)
    assert result.returncode == 2
    assert f"kiln: error: Class folder `{folder / 'b'}` has no readable images left." in result.stderr.splitlines()
    assert nothing_in(runs)
