"""Preference pairs from ASR corpora (``audiodata.readers.pairs``): the reference transcript chosen, an ASR hypothesis
rejected, from a column (``--column rejected=NAME``) or a file keyed by record id (``--hypotheses``); pairs whose two
sides are equal skipped and counted (summary, manifest, rejects.jsonl, the terminal), never silently.

Corpora: the raw ASR fixtures (tests/fixtures/raw_asr, audio from sample_data), a Parquet dataset written by
``datasets`` itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import audiodata
from audiodata.cli.main import main
from audiodata.dataset import Manifest
from audiodata.pipeline.options import ConvertOptions, OptionsError
from audiodata.readers.pairs import HypothesesError, load_hypotheses
from audiodata.readers.registry import InputError
from audiodata.verify import verify
from tests.raw_asr_audio import LAYOUT, make_corpus
from tests.readers.test_raw_asr import rejects, rows

TEXTS = [t for *_, t in LAYOUT]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("pairs") / "c")


def hypothesis(text: str) -> str:
    """An ASR hypothesis that differs from the reference: lower case, no final stop, a filler."""
    return text.lower().rstrip(".") + " uh"


def nemo_with_hypotheses(corpus: Path, name: str = "hyp.nemo.jsonl") -> Path:
    """long.nemo.jsonl as NeMo's transcribe_speech.py writes its output: each line plus ``pred_text``. Line 2's
    hypothesis equals its transcript but for spacing (an equal pair); line 6 has none."""
    lines = [json.loads(x) for x in (corpus / "long.nemo.jsonl").read_text().splitlines()]
    for line in lines:
        line["pred_text"] = hypothesis(line["text"])
    lines[1]["pred_text"] = "  " + lines[1]["text"].replace(" ", "   ") + " "
    del lines[5]["pred_text"]
    path = corpus / name
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def convert(inputs: list[Path], out: Path, **kw: Any) -> audiodata.ConvertResult:
    return audiodata.convert([str(p) for p in inputs], out, num_workers=1, **kw)


def test_a_hypothesis_column_makes_pairs_and_equal_pairs_are_skipped_and_counted(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    r = convert([nemo_with_hypotheses(corpus)], out, columns={"rejected": "pred_text"})
    assert (r.records_read, r.records_written, r.records_rejected, r.records_equal_pairs) == (7, 5, 1, 1)
    assert r.rejects_by_code == {"P005": 1} and r.exit_code == 1  # the missing hypothesis: the one failure
    pairs = rows(out)
    assert {p["id"] for p in pairs} == {"hyp-000000", "hyp-000002", "hyp-000003", "hyp-000004", "hyp-000006"}
    first = pairs[0]
    assert first["chosen"] == [{"role": "assistant", "content": TEXTS[0]}]
    assert first["rejected"] == [{"role": "assistant", "content": hypothesis(TEXTS[0])}]
    assert first["prompt"] == [{"role": "user", "content": "<audio>"}]
    assert json.loads(first["metadata"])["speaker"] == "spk1"  # the corpus's metadata stays with the pair
    # the equal pair: listed with its reason and id, apart from the rejects, counted in the summary and manifest
    skipped, missing = rejects(out)
    assert skipped["skipped"] == {"why": "equal-pair", "id": "hyp-000001"} and skipped["line"] == 2
    assert [x["code"] for x in skipped["reasons"]] == ["P004"]
    assert (missing["line"], missing["reasons"][0]["code"], missing["reasons"][0]["field"]) == (6, "P005", "pred_text")
    manifest = Manifest.load(out)
    assert manifest.summary.equal_pairs == 1 and manifest.rejects is not None
    assert (manifest.rejects.count, manifest.rejects.rejected, manifest.rejects.equal_pairs) == (2, 1, 1)
    assert manifest.to_json() == (out / "manifest.json").read_text()  # the model reads back what was written
    assert verify(out).exit_code == 0  # records_read = written + rejected + duplicates + equal pairs (V017)


def test_runs_without_pairs_write_what_they_always_did(corpus: Path, tmp_path: Path) -> None:
    convert([corpus / "long.nemo.jsonl"], tmp_path / "o")
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert "equal_pairs" not in manifest["summary"] and "equal_pairs" not in manifest["rejects"]
    assert "hypotheses" not in manifest["options"]


def test_ignoring_p004_writes_equal_pairs(corpus: Path, tmp_path: Path) -> None:
    r = convert([nemo_with_hypotheses(corpus)], tmp_path / "o", columns={"rejected": "pred_text"}, ignore=["P004"])
    assert (r.records_written, r.records_equal_pairs) == (6, 0)
    assert r.warnings_by_code.get("P001") is None  # spacing differs: not identical, only equal as words


def test_the_summary_table_names_the_equal_pairs(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = nemo_with_hypotheses(corpus)
    code = main(["convert", str(path), "-o", str(tmp_path / "o"), "--column", "rejected=pred_text", "--no-progress",
                 "--num-workers", "1"])  # fmt: skip
    assert code == 1
    out = capsys.readouterr().out
    assert "equal pairs skipped (P004)" in out and "P005" in out
    assert main(["info", str(tmp_path / "o")]) == 0
    assert "equal pairs skipped 1" in " ".join(capsys.readouterr().out.split())


def test_a_hypotheses_file_keyed_by_cut_id_and_by_supervision_for_windows(corpus: Path, tmp_path: Path) -> None:
    """lhotse: the single cut by its id; the windows of the whole-recording cut (ids long-0-0...) by the ids of the
    supervisions each holds, joined in time order, as the window joins their transcripts."""
    hyps = {"long-1": "please call stella"} | {f"long-{k}": hypothesis(t) for k, t in enumerate(TEXTS) if k != 1}
    hyps["long2ch-3"] = TEXTS[3]  # equal to the reference: skipped
    path = tmp_path / "hyps.jsonl"
    path.write_text("".join(json.dumps({"id": k, "hypothesis": v}) + "\n" for k, v in hyps.items()))
    out = tmp_path / "o"
    r = convert([corpus / "cuts.jsonl"], out, hypotheses=str(path), window_seconds=8.0)
    assert (r.records_written, r.records_rejected, r.records_equal_pairs) == (5, 0, 1)
    single, *windows = rows(out)
    assert (single["id"], single["rejected"][0]["content"]) == ("long-1", "please call stella")
    assert [w["id"] for w in windows] == ["long-0-0", "long-0-1", "long-0-2", "long-0-3"]
    first = windows[0]
    assert first["chosen"][0]["content"] == f"{TEXTS[0]} {TEXTS[1]}"
    assert first["rejected"][0]["content"] == f"{hypothesis(TEXTS[0])} please call stella"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["hypotheses"] == "hyps.jsonl" or manifest["options"]["hypotheses"].endswith("hyps.jsonl")


def test_kaldi_style_hypotheses_and_a_record_the_file_does_not_name(corpus: Path, tmp_path: Path) -> None:
    path = tmp_path / "hyp.trn"
    path.write_text("long-1 please call stella\nlong-0-0\tthe quick brown fox\n")
    assert load_hypotheses(path) == {"long-1": "please call stella", "long-0-0": "the quick brown fox"}
    out = tmp_path / "o"
    r = convert([corpus / "cuts.jsonl"], out, hypotheses=str(path), window_seconds=8.0)
    assert r.records_written == 2 and r.rejects_by_code == {"P005": 4}
    messages = sorted(x["reasons"][0]["message"] for x in rejects(out))
    assert messages[0] == "no hypothesis for id 'long-0-1' (nor for each of its lines or supervisions) in hyp.trn (--hypotheses)"


def test_nemo_windows_join_their_lines_hypotheses(corpus: Path, tmp_path: Path) -> None:
    lines = [json.loads(x) for x in (corpus / "long.nemo.jsonl").read_text().splitlines()]
    for line in lines:
        line["pred_text"] = hypothesis(line["text"])
    lines[2]["pred_text"] = lines[3]["pred_text"] = "same"  # shared by a window's lines: kept once at its top, joined twice
    path = corpus / "w.nemo.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = convert([path], tmp_path / "o", columns={"rejected": "pred_text"}, long_form="windows", window_seconds=8.0)
    assert r.records_written == 4
    first = rows(tmp_path / "o")[0]
    assert first["chosen"][0]["content"] == f"{TEXTS[0]} {TEXTS[1]}"
    assert first["rejected"][0]["content"] == f"{hypothesis(TEXTS[0])} {hypothesis(TEXTS[1])}"
    assert rows(tmp_path / "o")[1]["rejected"][0]["content"] == "same same"


def test_a_hypothesis_column_of_a_dataset(corpus: Path, tmp_path: Path) -> None:
    """A Parquet file written by ``datasets``: its audio column, transcript and hypothesis column."""
    from datasets import Audio, Dataset

    names = ["clip07_16k.flac", "clip08_16k.flac"]
    audio = [str(Path(audiodata.__file__).parents[1] / "sample_data" / "audio" / n) for n in names]
    table = {"audio": audio, "text": TEXTS[3:5], "asr": [hypothesis(TEXTS[3]), TEXTS[4]], "id": ["u1", "u2"]}
    path = tmp_path / "d" / "train.parquet"
    path.parent.mkdir()
    Dataset.from_dict(table).cast_column("audio", Audio()).to_parquet(str(path))
    r = convert([path], tmp_path / "o", columns={"rejected": "asr"})
    assert (r.records_written, r.records_equal_pairs) == (1, 1)
    (row,) = rows(tmp_path / "o")
    assert (row["id"], row["chosen"][0]["content"], row["rejected"][0]["content"]) == ("u1", TEXTS[3], hypothesis(TEXTS[3]))
    with pytest.raises(InputError, match="--column rejected=hyp: no such column"):
        convert([path], tmp_path / "o2", columns={"rejected": "hyp"})


def test_bad_hypotheses_and_options_are_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    for text, why in [
        ('{"id": "a", "hypothesis": "x"}\n{"hypothesis": "y"}\n', 'bad.jsonl:2: a line needs an "id"'),
        ('{"id": "a", "hypothesis": "x"}\n{"id": "a", "hypothesis": "y"}\n', "bad.jsonl:2: id 'a' is given twice"),
        ('{"id": "a", "words": "x"}\n', "a line needs its text under one of hypothesis, pred_text, text"),
        ("\n\n", "names no hypothesis"),
    ]:
        bad.write_text(text)
        with pytest.raises(HypothesesError, match=why):
            ConvertOptions(hypotheses=str(bad))
    with pytest.raises(OptionsError, match="not both"):
        ConvertOptions(hypotheses=str(bad), columns={"rejected": "pred_text"})
    code = main(["convert", "x.jsonl", "-o", str(tmp_path / "o"), "--hypotheses", str(tmp_path / "none.jsonl")])
    assert code == 2


def test_the_hypotheses_say_what_a_resume_must_pair(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"id": "a", "hypothesis": "x"}\n')
    first = ConvertOptions(hypotheses=str(path)).fingerprint([])
    path.write_text('{"id": "a", "hypothesis": "y"}\n')
    assert ConvertOptions(hypotheses=str(path)).fingerprint([]) != first


def test_lint_says_p004_once_for_an_equal_pair(corpus: Path) -> None:
    """The pair is skipped, so P001 (identical sides, a warning on pairs that are written) is not said as well."""
    path = corpus / "same.nemo.jsonl"
    path.write_text(
        json.dumps({"audio_filepath": "long.wav", "offset": 0.5, "duration": 3.25, "text": TEXTS[0], "pred_text": TEXTS[0]})
        + "\n"
    )
    codes = [
        f["code"] for f in audiodata.lint([str(path)], num_workers=1, columns={"rejected": "pred_text"}).to_dict()["findings"]
    ]
    assert codes == ["P004"]
    ignored = audiodata.lint([str(path)], num_workers=1, columns={"rejected": "pred_text"}, ignore=["P004"]).to_dict()["findings"]
    assert [f["code"] for f in ignored] == ["P001"]  # written then: the warning pairs that are written get
