"""Transcript style: the profile lint reports per input file and per prompt, the T002/T003 thresholds, and
``--normalize-transcripts`` (basic, and Whisper's English normaliser for real) with the originals in metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from audiodata.normalize import NORMALIZERS, ORIGINAL_KEY, NormalizerError, basic, normalizer, whisper_en
from audiodata.pipeline.convert import convert
from audiodata.pipeline.lint import lint
from audiodata.pipeline.options import ConvertOptions
from audiodata.report.terminal import print_lint
from audiodata.rules.style import MIN_SHARE, MIN_VOTES, Style, StyleStats, style_of
from tests.conftest import REPO, write_audio, write_jsonl

LOWER = [
    "the cat sat on the mat",
    "please close the door now",
    "we meet at noon sharp today",
    "it rains again this morning",
    "good morning to you all",
    "the bus is late again today",
    "she reads every single night",
    "turn the lights off now please",
    "bread is baking slowly here",
    "call me back later on then",
    "see you at the station",
    "the garden needs some water",
]


def asr(text: str, audio: str = "a.wav", prompt: str = "<audio>Transcribe the audio.") -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": text}], "audios": [audio]}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("style")
    write_audio(root / "a.wav", 2.0)
    return root


# --------------------------------------------------------------------------- the traits of one transcript


@pytest.mark.parametrize(
    ("text", "case", "punctuation", "numbers"),
    [
        ("the cat sat on the mat", "lower", "none", None),
        ("THE CAT SAT ON THE MAT", "upper", "none", None),
        ("The cat sat on the mat.", "cased", "punctuated", None),
        ("we went to Paris and I liked it", "lower", "none", None),  # names and "I" in a lower-case style,
        ("i don't know the well-known one", "lower", "none", None),  # in-word apostrophe and hyphen are not punctuation
        ("we have 3 cats at home", "lower", "none", "digits"),
        ("we have three cats at home", "lower", "none", "words"),
        ("no one is at home today", "lower", "none", None),  # "one" is mostly a pronoun: not a number word
        ("[NOISE] the cat sat on the mat", "lower", "none", None),  # tags are upper case by convention: left out
        ("你好，世界。今天天气很好。", None, "punctuated", None),  # no cased letters: casing not judged
        ("Yes.", "cased", None, None),  # too short to judge punctuation
        ("ok", None, None, None),
    ],
)
def test_traits(text: str, case: str | None, punctuation: str | None, numbers: str | None):
    s = style_of(text)
    assert (s.case, s.punctuation, s.numbers) == (case, punctuation, numbers)


def test_fillers_and_tags_are_found_but_not_inside_words():
    s = style_of("uh I think [laughter] um the summer <breath> was hmm fine")
    assert s.fillers == ("uh", "um", "hmm") and s.tags == ("[laughter]", "<breath>")
    assert style_of("the umbrella and the hummingbird under the err sign").fillers == ()


# --------------------------------------------------------------------------- thresholds


def _stats(styles: list[tuple[int, Style]], prompt: str = "p") -> StyleStats:
    st = StyleStats()
    for i, (n, s) in enumerate(styles):
        st.add(n, i, i + 1, prompt, "messages[1]", s)
    return st


def test_mixed_casing_fires_at_the_first_minority_record_and_not_below_the_share():
    lower, cased = style_of("the cat sat on the mat"), style_of("The cat sat on the mat")
    mixes = list(_stats([(0, lower)] * 6 + [(0, cased)] + [(0, lower)] * 4).mixes())
    assert [(m.trait, m.value, m.at[1], m.counts) for m in mixes] == [("case", "cased", 6, (("lower", 10), ("cased", 1)))]
    n_quiet = int(1 / MIN_SHARE)  # one odd transcript in more than 1/MIN_SHARE: a stray, not a second style
    assert list(_stats([(0, lower)] * n_quiet + [(0, cased)]).mixes()) == []
    assert list(_stats([(0, lower)] * (MIN_VOTES - 2) + [(0, cased)]).mixes()) == []  # too few votes to judge
    assert list(_stats([(0, lower)] * (MIN_VOTES - 1) + [(0, cased)]).mixes())  # ... and just enough


def test_styles_are_compared_per_prompt_only():
    lower, cased = style_of("the cat sat on the mat"), style_of("The cat sat on the mat")
    st = StyleStats()
    for i in range(12):
        st.add(0, i, None, "<audio>Transcribe in lower case.", "f", lower)
        st.add(1, i, None, "<audio>Transcribe with punctuation.", "f", cased)
    assert list(st.mixes()) == []  # two prompts, one style each: the model is told which
    assert st.summary(["a", "b"])["prompts"] == 2


def test_annotation_mix_needs_enough_records_in_the_file_without():
    verbatim = [style_of("uh the cat sat on the mat"), style_of("the cat sat on the mat")] * 5  # fillers in half
    clean = style_of("the cat sat on the mat")
    st = _stats([(0, s) for s in verbatim] + [(1, clean)] * 20)
    (mix,) = [m for m in st.annotation_mixes() if m.annotation == "fillers"]
    assert (mix.with_file, mix.count, mix.of, mix.records, mix.at[:2], mix.examples) == (0, 5, 10, 20, (1, 10), ("uh",))
    assert list(_stats([(0, s) for s in verbatim] + [(1, clean)] * 19).annotation_mixes()) == []  # 9.5 expected: quiet


def test_prompts_past_the_bound_are_counted_not_profiled(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("audiodata.rules.style.MAX_PROMPTS", 3)
    st = StyleStats()
    for i in range(5):
        st.add(0, i, None, f"prompt {i}", "f", style_of("the cat sat on the mat"))
    summary = st.summary(["in.jsonl"])
    assert (summary["prompts"], summary["prompts_untracked_records"], summary["by_source"]["in.jsonl"]["records"]) == (3, 2, 5)


def test_a_long_prompt_is_keyed_by_its_head_and_a_digest():
    from audiodata.readers.dialects import parse_record
    from audiodata.readers.dialects.common import ParseContext
    from audiodata.readers.spec import DialectSpec
    from audiodata.records import SourceLoc
    from audiodata.rules.style import MAX_PROMPT_KEY, transcript_style

    def key(prompt: str) -> str:
        rec, _ = parse_record(asr("hello there", prompt=prompt), ParseContext(DialectSpec(), SourceLoc("x", 0), "."))
        assert rec is not None
        found = transcript_style(rec, "asr")
        assert found is not None
        return found[0]

    long_a, long_b = "<audio>" + "a" * 5000, "<audio>" + "a" * 4999 + "b"
    assert len(key(long_a)) < MAX_PROMPT_KEY and key(long_a) != key(long_b) and key(long_a) == key(long_a)
    assert key("<audio>Transcribe.") == "<audio>Transcribe."


# --------------------------------------------------------------------------- lint end to end


def _two_corpora(tmp: Path, media: Path) -> list[str]:
    a = write_jsonl(tmp / "libri.jsonl", [asr(t.upper(), str(media / "a.wav")) for t in LOWER])
    b = write_jsonl(tmp / "cv.jsonl", [asr(t.capitalize() + ".", str(media / "a.wav")) for t in LOWER])
    return [str(a), str(b)]


def test_lint_reports_the_profile_per_file_and_prompt_and_flags_the_mix(tmp_path: Path, media: Path):
    report = lint(_two_corpora(tmp_path, media), num_workers=2, audio=False)
    data = report.to_dict()
    schema = json.loads((REPO / "schemas" / "lint_report.schema.json").read_text())
    jsonschema.validate(data, schema)
    style = data["summary"]["transcript_style"]
    files = list(style["by_source"])
    assert [style["by_source"][f]["case"] for f in files] == [{"upper": 12}, {"cased": 12}]
    assert [style["by_source"][f]["punctuation"] for f in files] == [{"none": 12}, {"punctuated": 12}]
    (prompt,) = style["by_prompt"]
    assert prompt["prompt"] == "<audio>Transcribe the audio." and prompt["case"] == {"upper": 12, "cased": 12}
    t002 = [f for f in data["findings"] if f["code"] == "T002"]
    assert [(f["source"], f["index"], f["field"]) for f in t002] == [(files[1], 0, "conversations[1].value")] * 2
    assert "12 upper, 12 cased" in t002[0]["message"] and f"{files[0]}:line 1" in t002[0]["message"]
    console = Console(record=True, width=140)
    print_lint(data, console)
    text = console.export_text()
    assert "transcript style: 24 transcripts" in text and "upper 12" in text and "punct 12" in text


def test_no_profile_with_task_none_or_both_rules_off_nor_for_non_transcription_records(tmp_path: Path, media: Path):
    inputs = _two_corpora(tmp_path, media)
    assert "transcript_style" not in lint(inputs, num_workers=1, audio=False, task="none").to_dict()["summary"]
    assert "transcript_style" not in lint(inputs, num_workers=1, audio=False, ignore=["T002", "T003"]).to_dict()["summary"]
    assert "transcript_style" in lint(inputs, num_workers=1, audio=False, ignore=["T002"]).to_dict()["summary"]
    chat = write_jsonl(tmp_path / "chat.jsonl", [asr(t, str(media / "a.wav"), "<audio>Summarise this.") for t in LOWER])
    assert "transcript_style" not in lint([str(chat)], num_workers=1, audio=False).to_dict()["summary"]


def test_lint_with_the_normaliser_sees_one_style(tmp_path: Path, media: Path):
    data = lint(_two_corpora(tmp_path, media), num_workers=1, audio=False, normalize_transcripts="basic").to_dict()
    assert not [f for f in data["findings"] if f["code"].startswith("T")]
    assert data["summary"]["transcript_style"]["by_prompt"][0]["case"] == {"lower": 24}


# --------------------------------------------------------------------------- the normalisers


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Hello, World! I don't know.", "hello world i don't know"),
        ("[NOISE] It costs $3.50 at 10:30 (inaudible).", "it costs 3.50 at 10:30"),
        ("A well-known  café’s menu…", "a well-known café's menu"),
        ("你好，世界。", "你好 世界"),
        ("नमस्ते, दुनिया!", "नमस्ते दुनिया"),  # vowel signs (combining marks) kept, unlike Whisper's basic normaliser
        ("ＦＵＬＬＷＩＤＴＨ", "fullwidth"),
    ],
)
def test_basic(text: str, want: str):
    assert basic(text) == want


SENTENCES = [
    "Mr. Smith paid $20 million for the colour TV, um, in the 1990s!",
    "I can't believe it's twenty-five past two [NOISE].",
    "The organisation's first one hundred and one days were, uh, hmm... fine.",
    "Dr. Jones won't analyse the 3rd quarter's 1,250 cheques at 10.5%.",
]


def _sample_texts() -> list[str]:
    """Every reply text of sample_data's MiniCPM file (real sentences, read by espeak-ng into its clips)."""
    out = []
    for line in (REPO / "sample_data" / "minicpm.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            text = json.loads(line).get("text")
        except (ValueError, AttributeError):
            continue
        if isinstance(text, str):
            out.append(text)
    return out


def test_whisper_en_is_whispers_normaliser():
    """The same output as OpenAI's normaliser as the whisper-normalizer package ships it (its own copy of the code
    and table), and as transformers' EnglishTextNormalizer with that table: not a look-alike."""
    english = pytest.importorskip("whisper_normalizer.english")
    reference = english.EnglishTextNormalizer()
    texts = SENTENCES + _sample_texts()
    assert len(texts) > 10
    assert [whisper_en()(t) for t in texts] == [reference(t).strip() for t in texts]


def test_whisper_en_uses_the_spelling_table():
    pytest.importorskip("whisper_normalizer")
    assert whisper_en()("The colour of the organisation") == "the color of the organization"
    assert whisper_en()("twenty-five um dollars") == "$25"  # numbers as digits, fillers gone


def test_a_missing_spelling_table_is_a_usage_error_before_any_record(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr("audiodata.normalize.SPELLING_TABLES", (("no_such_package_here", "x.json"),))
    whisper_en.cache_clear()
    try:
        with pytest.raises(NormalizerError, match="pip install whisper-normalizer"):
            ConvertOptions(normalize_transcripts="whisper-en")
    finally:
        whisper_en.cache_clear()
    with pytest.raises(NormalizerError, match="must be one of"):
        normalizer("whisper-fr")


def test_the_cli_offers_every_normaliser():
    import argparse

    from audiodata.cli.reading import add_reading_options

    p = argparse.ArgumentParser()
    add_reading_options(p)
    (action,) = [a for a in p._actions if a.dest == "normalize_transcripts"]
    assert tuple(action.choices or ()) == NORMALIZERS


# --------------------------------------------------------------------------- convert


def _rows(out: Path) -> list[dict[str, Any]]:
    return [r for f in sorted((out / "data").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_convert_normalises_transcripts_and_keeps_the_originals(tmp_path: Path, media: Path):
    a = str(media / "a.wav")
    records = [
        asr("Hello, World.", a),
        asr("hello world", a),  # already in the style: no original kept
        asr("Please SUMMARISE, this.", a, "<audio>Summarise this."),  # not a transcription: untouched
        asr("[noise]", a),  # nothing left: rejected as an empty reply, not written empty
        {
            "conversations": [{"from": "human", "value": "<audio>Transcribe the audio."}],
            "chosen": {"from": "gpt", "value": "The cat sat."},
            "rejected": {"from": "gpt", "value": "The Cat, sat!"},
            "audios": [a],
        },
    ]
    out = tmp_path / "out"
    result = convert([str(write_jsonl(tmp_path / "in.jsonl", records))], out, num_workers=1, normalize_transcripts="basic")
    assert (result.records_written, result.records_rejected) == (4, 1)
    rows = {r["id"]: r for r in _rows(out)}
    sft = sorted((r for r in rows.values() if "messages" in r), key=lambda r: r["source"]["index"])
    assert [r["messages"][1]["content"] for r in sft] == ["hello world", "hello world", "Please SUMMARISE, this."]
    assert [json.loads(r["metadata"]) if r["metadata"] else None for r in sft] == [
        {ORIGINAL_KEY: {"messages[1]": "Hello, World."}},
        None,
        None,
    ]
    (pair,) = [r for r in rows.values() if "chosen" in r]
    assert (pair["chosen"][0]["content"], pair["rejected"][0]["content"]) == ("the cat sat", "the cat sat")
    assert json.loads(pair["metadata"])[ORIGINAL_KEY] == {"chosen[0]": "The cat sat.", "rejected[0]": "The Cat, sat!"}
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [(r["index"], [x["code"] for x in r["reasons"]]) for r in rejects] == [(3, ["S004"])]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["normalize_transcripts"] == "basic"
    assert ORIGINAL_KEY in manifest["summary"]["metadata_keys"]
    assert "| `transcript_original` | 2 | a transcript as the corpus wrote it, where `--normalize-transcripts` changed it" in (
        (out / "README.md").read_text()
    )


def test_without_the_option_the_manifest_is_as_before(tmp_path: Path, media: Path):
    out = tmp_path / "out"
    convert([str(write_jsonl(tmp_path / "in.jsonl", [asr("Hello, World.", str(media / "a.wav"))]))], out, num_workers=1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "normalize_transcripts" not in manifest["options"]
    assert _rows(out)[0]["messages"][1]["content"] == "Hello, World." and "metadata" not in _rows(out)[0]
