"""Text data through kiln's input path: CSV, Parquet and JSON Lines, bad input, the word tokenizer, `inspect --text`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tickets import ticket_rows, write_tickets

import kiln
from kiln.data.tokenizer import PAD, UNKNOWN, WordTokenizer
from kiln.errors import DataError, KilnWarning


def test_csv_parquet_and_jsonl_load_the_same_messages(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = ticket_rows(5)
    csv_path = write_tickets(tmp_path / "t.csv", rows)
    pq.write_table(pa.table({"message": [m for m, _ in rows], "intent": [i for _, i in rows]}), tmp_path / "t.parquet")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"message": m, "intent": i}) + "\n" for m, i in rows))
    loaded = [kiln.load_data(str(p), text="message", target="intent") for p in (csv_path, *tmp_path.glob("t.[pj]*"))]
    for data in loaded:
        assert data.schema.classes == sorted({i for _, i in rows})
        assert data.schema.features == ["message"]
        assert len(data.y_train) + len(data.y_test) == 40
        assert sorted([*data.x_train, *data.x_test]) == sorted(m for m, _ in rows)


def test_empty_messages_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = ticket_rows(5)
    rows[3] = ("   ", rows[3][1])
    rows[7] = ("", rows[7][1])
    path = write_tickets(tmp_path / "t.csv", rows)
    with pytest.warns(
        KilnWarning, match=r"Dropped 2 row\(s\) whose `message` is empty \(the first at `.*t.csv` line 5\)"
    ):
        data = kiln.load_data(str(path), text="message", target="intent")
    assert len(data.y_train) + len(data.y_test) == 38


def test_blank_labels_are_unlabelled_messages_kept_out_of_both_splits(tmp_path: Path) -> None:
    rows = ticket_rows(5)
    for i in (2, 9, 17):
        rows[i] = (rows[i][0], "")
    rows[20] = ("", "")  # empty and unlabelled: dropped as empty
    path = write_tickets(tmp_path / "t.csv", rows)
    with pytest.warns(KilnWarning, match=r"Dropped 1 row\(s\) whose `message` is empty"):
        data = kiln.load_data(str(path), text="message", target="intent")
    assert sorted(data.unlabeled) == sorted(rows[i][0] for i in (2, 9, 17))
    assert len(data.y_train) + len(data.y_test) == 36
    assert not set(data.unlabeled) & {*data.x_train, *data.x_test}


def test_a_file_without_any_label_says_so(tmp_path: Path) -> None:
    path = write_tickets(tmp_path / "t.csv", [(m, "") for m, _ in ticket_rows(1)])
    with pytest.raises(DataError, match=r"has no labelled, non-empty messages in column `message` \(8 without a label"):
        kiln.load_data(str(path), text="message", target="intent")


def test_undecodable_bytes_name_line_and_column(tmp_path: Path) -> None:
    path = write_tickets(tmp_path / "t.csv", ticket_rows(5))
    lines = path.read_bytes().split(b"\n")
    lines[3] = b"caf\xe9 is closed," + lines[3].split(b",")[-1]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"line 4, column `message`: not valid utf-8 text .* pass `--encoding`"):
        kiln.load_data(str(path), text="message", target="intent")


def test_a_wrong_text_column_is_named_with_the_nearest(tmp_path: Path) -> None:
    path = write_tickets(tmp_path / "t.csv", ticket_rows(5))
    with pytest.raises(DataError, match=r"has no text column `mesage`\. Did you mean `message`\?"):
        kiln.load_data(str(path), text="mesage", target="intent")


def test_tokenizer_is_fitted_on_training_words_and_saved_as_json() -> None:
    tok = WordTokenizer.fit(["Where is my parcel?", "where is my refund"], max_vocab=100, max_tokens=5)
    assert tok.vocab[:3] == ("where", "is", "my")
    ids, truncated = tok.encode(["where is my parcel?", "my cat", "where is my parcel now please"])
    assert truncated == 1  # 6 tokens cut to 5; "where is my parcel ?" is 5
    assert ids.dtype == np.float32 and ids.shape == (3, 5)
    assert ids[1].tolist() == [tok.vocab.index("my") + 2, UNKNOWN, PAD, PAD, PAD]  # "cat" was never seen
    again = WordTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert np.array_equal(again.encode(["where is my parcel?"])[0], ids[:1])


def test_inspect_text_reports_lengths_empties_overlong_and_balance(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    rows = ticket_rows(5)
    rows[0] = ("", rows[0][1])
    rows[1] = (" ".join(["word"] * 60), rows[1][1])  # the example messages have at most 31 words
    path = write_tickets(tmp_path / "t.csv", rows)
    result = cli("inspect", "--data", path, "--text", "message", "--target", "intent", "--max-tokens", "40")
    assert result.returncode == 0
    out = result.stdout
    assert f"{path}: 40 rows; text column `message`" in out
    assert "empty messages: 1 (the first at" in out and "line 2" in out
    assert "longer than 40 words: 1 (training cuts them" in out
    assert "max 60" in out
    assert "classes of `intent` (8)" in out and "imbalance (largest/smallest): 1.0x" in out
    assert "unlabelled" not in out


def test_inspect_text_counts_blank_labels_as_unlabelled_messages(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    rows = ticket_rows(5)
    rows[3], rows[4] = (rows[3][0], ""), (rows[4][0], "")
    result = cli(
        "inspect", "--data", write_tickets(tmp_path / "t.csv", rows), "--text", "message", "--target", "intent"
    )
    assert result.returncode == 0
    assert "unlabelled messages (blank `intent`): 2 (in neither split" in result.stdout
