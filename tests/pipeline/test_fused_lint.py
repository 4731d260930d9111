"""The fused text-only lint pass (audiodata/pipeline/fused.py, issue 15) answers only for records the general path
finds nothing in, and then with the general path's own kind, digests and transcript style; the lint report is the
same byte for byte with the pass on or off."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import seed as hyp_seed
from hypothesis import strategies as st

from audiodata.dedup.index import exact_digests
from audiodata.pipeline import fused
from audiodata.pipeline import lint as lint_mod
from audiodata.pipeline.lint import Analyser, LintTask, lint
from audiodata.pipeline.options import resolve_options
from audiodata.readers.jsonstream import RawItem, range_lines
from audiodata.readers.sources import expand_inputs
from audiodata.rules.registry import select

# -- generated records of every shape the pass knows, and of their near misses ------------------------------------

TEXTS = st.one_of(
    st.sampled_from(
        ["Transcribe this audio.", "<audio>Transcribe this audio.", "<audio>\nWhat is said?", "<audio>", "Hello there.",
         "THE CAT SAT ON THE MAT", "the cat sat on the mat", "uh I think so", "It costs 12 dollars.", "", "  ", "\n",
         "<audio><audio>Compare.", "x <|AUDIO|> y", "(<audio>./</audio>)", "audio_bos", "<image>", "<video>", "caf\ufffd",
         "a\x00b", "tab\there", "a\x7f", "说话人在描述。", "[noise] yes", "<audio>Who is speaking?", "Yes.", "spk_1"]
    ),
    st.text(max_size=12),
)
ROLES_FROM = st.sampled_from(["human", "gpt", "system", "observation", "function_call", "bot", "Human", "narrator", ""])
ROLES_ROLE = st.sampled_from(["user", "assistant", "system", "tool", "model", "observation", "User", "speaker"])
PATHS = st.one_of(
    st.sampled_from(["a.wav", "clips/0001/b.flac", "/abs/c.wav", "./d.wav", "../e.wav", "f//g.wav", "dir/", " h.wav", "",
                     "   ", "data:audio/wav;base64,AAAA", "https://x.org/a.wav", "file:///a.wav", "A" * 130, "x\x00y",
                     "n" * 300 + ".wav", "d" * 70 + "/ok.wav"]),
    st.text(min_size=1, max_size=10),
)
AUDIOS = st.one_of(
    st.lists(PATHS, max_size=3),
    PATHS,
    st.sampled_from([None, [], [{"path": "a.wav"}], [1], {"bytes": "AAAA"}, [None]]),
)
NUMBERS = st.one_of(st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False))
OTHER = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS, st.lists(TEXTS, max_size=2))


def _turn(draw: Any, role_form: bool) -> dict[str, Any]:
    if role_form:
        turn: dict[str, Any] = {"role": draw(ROLES_ROLE), "content": draw(TEXTS)}
    else:
        turn = {"from": draw(ROLES_FROM), "value": draw(TEXTS)}
    if draw(st.integers(0, 19)) == 0:  # a near miss: another key, a missing key, a non-string value
        choice = draw(st.integers(0, 2))
        if choice == 0:
            turn["name"] = "x"
        elif choice == 1:
            turn.pop(next(iter(turn)))
        else:
            turn[list(turn)[1]] = draw(OTHER)
    return turn


def _plain_turns(draw: Any, role_form: bool, exchanges: int, system: bool) -> list[dict[str, Any]]:
    """Turns that are mostly well formed (user, assistant, ...), so the plain shapes are drawn often."""
    user, assistant = ("user", "assistant") if role_form else ("human", "gpt")
    rk, ck = ("role", "content") if role_form else ("from", "value")
    out = [{rk: "system", ck: draw(TEXTS)}] if system else []
    for k in range(exchanges):
        out.append({rk: user if k % 2 == 0 else assistant, ck: draw(TEXTS)})
    return out


CLEAN = st.sampled_from(["Transcribe this audio.", "What is said?", "Hello there.", "THE CAT SAT", "the cat sat on the mat",
                         "uh I think so", "It costs 12 dollars.", "说话人在描述。", "Line one.\nLine two.", "Yes.", "tab\there"])


@st.composite
def records(draw: Any) -> dict[str, Any]:
    """Half of them clean records of the five shapes (markers matching the audios), half drawn from anything."""
    if draw(st.booleans()):
        return _clean(draw)
    shape = draw(st.sampled_from(["sharegpt", "sharegpt_dpo", "messages", "alpaca", "minicpm"]))
    role_form = shape == "messages" or draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:  # turns drawn one by one: any role, any order
        turns = [_turn(draw, role_form) for _ in range(draw(st.integers(0, 4)))]
    else:
        exchanges = draw(st.integers(1, 4)) if shape != "sharegpt_dpo" else draw(st.sampled_from([1, 1, 3, 2]))
        turns = _plain_turns(draw, role_form, exchanges, draw(st.integers(0, 4)) == 0)
    rec: dict[str, Any]
    if shape in ("sharegpt", "sharegpt_dpo"):
        rec = {"conversations": turns}
        if shape == "sharegpt_dpo":
            rk, ck, who = ("role", "content", "assistant") if role_form else ("from", "value", "gpt")
            rec["chosen"] = {rk: who, ck: draw(TEXTS)}
            rec["rejected"] = {rk: draw(st.sampled_from([who, who, who, "human", "user"])), ck: draw(TEXTS)}
            if draw(st.integers(0, 9)) == 0:
                rec.pop(draw(st.sampled_from(["chosen", "rejected"])))
    elif shape == "messages":
        rec = {"messages": turns}
    elif shape == "alpaca":
        rec = {"instruction": draw(TEXTS), "input": draw(st.sampled_from(["", "", "more", None, 3])), "output": draw(TEXTS)}
        if draw(st.booleans()):
            rec.pop("input")
    else:
        rec = {"text": draw(TEXTS)}
        rec[draw(st.sampled_from(["audio", "audios"]))] = draw(AUDIOS)
    if shape != "minicpm" and draw(st.integers(0, 4)):
        rec["audios"] = draw(AUDIOS)
    if draw(st.integers(0, 4)) == 0:
        rec["system"] = draw(st.one_of(TEXTS, OTHER))
    if draw(st.integers(0, 4)) == 0:
        rec["id"] = draw(st.one_of(st.text(max_size=4), st.integers(), st.booleans(), st.none()))
    if draw(st.integers(0, 9)) == 0:
        rec[draw(st.sampled_from(["tools", "kto_tag", "label", "images", "prompt", "solution", "history", "x"]))] = draw(OTHER)
    return rec


def _clean(draw: Any) -> dict[str, Any]:
    shape = draw(st.sampled_from(["sharegpt", "sharegpt_dpo", "messages", "alpaca", "minicpm"]))
    clips = draw(st.integers(0 if shape != "minicpm" else 1, 2))
    paths = [draw(st.sampled_from(["a.wav", "clips/0001/b.flac", "/abs/c.wav", "d" * 70 + "/ok.wav"])) for _ in range(clips)]
    head = "<audio>" * clips if shape != "minicpm" else ""
    role_form = shape == "messages" or draw(st.booleans())
    rk, ck, user, assistant = ("role", "content", "user", "assistant") if role_form else ("from", "value", "human", "gpt")
    n = draw(st.sampled_from([1, 3])) if shape == "sharegpt_dpo" else draw(st.sampled_from([2, 2, 4]))
    turns = [{rk: user if k % 2 == 0 else assistant, ck: (head if k == 0 else "") + draw(CLEAN)} for k in range(n)]
    if draw(st.integers(0, 3)) == 0:
        turns.insert(0, {rk: "system", ck: draw(CLEAN)})
    rec: dict[str, Any]
    if shape == "minicpm":
        rec = {"text": draw(CLEAN), **({"audio": paths[0]} if clips == 1 and draw(st.booleans()) else {"audios": paths})}
    elif shape == "alpaca":
        rec = {"instruction": head + draw(CLEAN), "input": draw(st.sampled_from(["", "more"])), "output": draw(CLEAN)}
    else:
        rec = {"conversations" if shape != "messages" else "messages": turns}
        if shape == "sharegpt_dpo":
            rec["chosen"], rec["rejected"] = {rk: assistant, ck: "Good."}, {rk: assistant, ck: draw(CLEAN)}
    if shape != "minicpm" and (clips or draw(st.booleans())):
        rec["audios"] = paths[0] if clips == 1 and draw(st.booleans()) else paths
    if draw(st.integers(0, 3)) == 0:
        rec["system"] = draw(CLEAN)
    if draw(st.integers(0, 3)) == 0:
        rec["id"] = draw(st.one_of(st.text(max_size=4), st.integers()))
    return rec


def drawn(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` records from :func:`records`, the same ones every run."""
    out: list[dict[str, Any]] = []

    @hyp_seed(seed)
    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(records())
    def collect(rec: dict[str, Any]) -> None:
        out.append(rec)

    collect()
    return out


# -- the general path, as text-only lint runs it ---------------------------------------------------------------------


def analyser(root: Path, style: str = "auto", **options: Any) -> Analyser:
    (root / "in.jsonl").write_text("{}\n")
    opts = resolve_options(None, options)
    files = expand_inputs([str(root / "in.jsonl")], opts.media_root, opts.format, opts.datasets, None, False, False, None).files
    enabled = frozenset(select(None, None))
    task = LintTask(files, opts.read_settings(enabled), None, False, True, None, opts.excluded, style, opts.longform(enabled))
    return Analyser(task)


def general(an: Analyser, line: str) -> tuple[list[str], Any]:
    """(finding codes, what the fused pass would answer) of the record on ``line``, by the general path."""
    a = an.one(0, 0, RawItem(0, 1, text=line, nbytes=len(line)))
    if a.findings or a.task is None:
        return [f.code for f in a.findings], None
    kind, _, audios = a.task
    keys = exact_digests(*a.dedup) if a.dedup is not None else None
    return [], (kind, audios, keys, a.style)


@pytest.fixture(scope="module")
def analysers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Analyser]:
    return {style: analyser(tmp_path_factory.mktemp(style), style) for style in ("auto", "asr", "none")}


PLAIN = [
    {"conversations": [{"from": "human", "value": "<audio>Transcribe this audio."}, {"from": "gpt", "value": "Hi."}],
     "audios": ["a.wav"]},
    {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "<audio>What?"},
                       {"from": "gpt", "value": "Rain."}, {"from": "human", "value": "And?"}, {"from": "gpt", "value": "No."}],
     "audios": "b.wav", "id": 7},
    {"conversations": [{"role": "user", "content": "<audio>Say it."}], "chosen": {"role": "assistant", "content": "A."},
     "rejected": {"role": "assistant", "content": "B."}, "audios": ["c.wav"], "system": "S"},
    {"messages": [{"role": "system", "content": "You transcribe."}, {"role": "user", "content": "<audio>"},
                  {"role": "assistant", "content": "the cat sat on the mat"}], "audios": ["/abs/d.wav"]},
    {"instruction": "<audio>\nTranscribe verbatim.", "input": "", "output": "Twelve cats.", "audios": ["e.wav"]},
    {"audio": "f.wav", "text": "uh I think so [noise]"},
    {"audios": ["g.wav", "h.wav"], "text": "two clips", "system": "x", "id": "r1"},
    {"messages": [{"role": "user", "content": "no audio here"}, {"role": "assistant", "content": "fine"}]},
]


@pytest.mark.parametrize("style", ["auto", "asr", "none"])
@pytest.mark.parametrize("rec", PLAIN, ids=range(len(PLAIN)))
def test_plain_records_are_answered_as_the_general_path_answers(
    rec: dict[str, Any], style: str, analysers: dict[str, Analyser]
) -> None:
    """Every plain shape is answered (so the property below cannot pass by answering nothing), and equally."""
    an = analysers[style]
    line = json.dumps(rec, ensure_ascii=False)
    codes, expected = general(an, line)
    assert codes == [] and expected is not None
    assert an.fused[0].record(orjson.loads(line)) == expected


SHAREGPT = [{"from": "human", "value": "<audio>x"}, {"from": "gpt", "value": "y"}]
MESSAGES = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(rec=records(), style=st.sampled_from(["auto", "asr", "none"]))
@example(rec={"conversations": SHAREGPT, "audios": None}, style="auto")  # null where the schemas want a value
@example(rec={"instruction": "q", "input": None, "output": "a"}, style="auto")
@example(rec={"messages": MESSAGES, "system": None}, style="auto")  # the messages schema has no system: no S005
@example(rec={"audio": ["a.wav"], "text": "t"}, style="auto")
@example(rec={"audios": "a.wav", "text": "t"}, style="auto")
@example(rec={"conversations": [{"from": "human", "value": "<audio>q"}], "chosen": {"from": "gpt", "value": "a"},
              "rejected": {"from": "gpt", "value": "a"}, "audios": ["a.wav"]}, style="auto")
def test_fused_answers_only_what_the_general_path_finds_clean(
    rec: dict[str, Any], style: str, analysers: dict[str, Analyser]
) -> None:
    an = analysers[style]
    line = json.dumps(rec, ensure_ascii=False)
    answer = an.fused[0].record(orjson.loads(line))
    if answer is None:
        return  # the general path decides: nothing to compare
    codes, expected = general(an, line)
    assert codes == [], (codes, line)
    assert answer == expected, line


def test_the_property_draws_both_answers(analysers: dict[str, Analyser]) -> None:
    """The generator draws records the pass answers and records it leaves to the general path, often enough for the
    property to mean something."""
    an = analysers["auto"]
    answered = [an.fused[0].record(rec) is not None for rec in drawn(400, 1)]
    assert 0.2 < sum(answered) / len(answered) < 0.8


# -- whole reports -----------------------------------------------------------------------------------------------


def corpus(root: Path) -> list[Path]:
    """Records of every shape, broken ones, copies and conflicting answers, over lines the fused reader hands back:
    blank and whitespace lines, invalid JSON, a long integer, non-UTF-8 bytes; one file with CRLF line ends."""
    import random

    rnd = random.Random(5)
    recs = drawn(600, 5) + PLAIN * 10
    rnd.shuffle(recs)
    lines = [json.dumps(r, ensure_ascii=False) for r in recs]
    lines += [lines[k] for k in range(0, 200, 7)]  # exact copies
    odd = ["", "   ", "{not json", '{"conversations": [], "n": 12345678901234567890123}', "\u00a0"]
    mixed: list[str] = []
    for k, line in enumerate(lines):
        mixed.append(line)
        if k % 37 == 0:
            mixed.append(odd[k % len(odd)])
    a, b = root / "a.jsonl", root / "b.jsonl"
    data = "\n".join(mixed).encode()
    a.write_bytes(data[: len(data) // 2] + b"\n" + b'{"text": "\xff\xfe bad", "audio": "x.wav"}' + b"\n" + data[len(data) // 2 :])
    b.write_bytes("\r\n".join(mixed[:300]).encode() + b"\r\n")
    return [a, b]


def reports(files: list[Path], monkeypatch: pytest.MonkeyPatch, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    monkeypatch.setattr(lint_mod, "RANGE_BYTES", 9000)  # many ranges
    kwargs: dict[str, Any] = {"num_workers": 2, "progress": False, **options}
    on = lint([str(f) for f in files], audio=False, **kwargs).to_dict()
    with monkeypatch.context() as m:
        m.setattr(fused, "usable_spec", lambda spec: False)
        off = lint([str(f) for f in files], audio=False, **kwargs).to_dict()
    return on, off


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "options",
    [{}, {"task": "asr"}, pytest.param({"ignore": ["D"]}, marks=SLOW), pytest.param({"ignore": ["T002", "T003"]}, marks=SLOW)],
    ids=str,
)
def test_the_report_is_the_same_with_the_pass_on_or_off(
    options: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = corpus(tmp_path)
    on, off = reports(files, monkeypatch, **options)
    assert json.dumps(on, sort_keys=True) == json.dumps(off, sort_keys=True)
    assert on["summary"]["records"] > 600 and len(on["findings"]) > 100
    if not options:
        assert {"D001", "F001", "S004", "M001"} <= set(on["summary"]["by_code"]), on["summary"]["by_code"]


def test_lines_the_reader_hands_back_keep_their_place(tmp_path: Path) -> None:
    """Findings of records the fused reader leaves to the general path keep their exact line and index."""
    good = json.dumps(PLAIN[0])
    path = tmp_path / "a.jsonl"
    digits = good[:-1] + ', "n": 12345678901234567890123}'  # orjson would read a float: json reads it (a copy)
    rows = [good, "", "  ", "{bad", good, "\u00a0", '{"conversations": []}', good, digits, good]
    path.write_bytes(("\n".join(rows) + "\n").encode())
    got = range_lines(path, 0, path.stat().st_size, 1 << 20)
    assert got is not None and len(got[0]) == 11 and got[1] == {8}  # ten lines, the empty tail after the last line end
    found = lint([str(path)], audio=False, num_workers=1, progress=False).to_dict()["findings"]
    assert [(f["code"], f["line"], f["index"]) for f in found] == [
        ("F001", 4, 1), ("D001", 5, 2), ("S005", 7, 3), ("S007", 7, 3), ("D001", 8, 4), ("D001", 9, 5), ("D001", 10, 6)
    ]


def test_ranges_it_cannot_read_plainly_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines near the bound (F005 is the line reader's), a file that cannot be read (the line reader locates the
    failure), a gzip file: refused. A byte order mark and lone carriage returns are read as the line reader reads
    them (the one window does both), so the report is the same with the pass on or off."""
    line = json.dumps(PLAIN[0]).encode()
    cases = {
        "bom.jsonl": b"\xef\xbb\xbf" + line + b"\n",
        "lonecr.jsonl": line + b"\r" + line + b"\n",
        "long.jsonl": line + b"\n" + line + b"\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "gz.jsonl").write_bytes(gzip.compress(cases["long.jsonl"]))
    assert range_lines(tmp_path / "bom.jsonl", 0, len(cases["bom.jsonl"]), 1 << 20) == ([line, b""], frozenset())
    assert range_lines(tmp_path / "lonecr.jsonl", 0, len(cases["lonecr.jsonl"]), 1 << 20) == ([line, line, b""], frozenset())
    for name in ("bom.jsonl", "lonecr.jsonl"):
        on, off = reports([tmp_path / name], monkeypatch)
        assert on == off and on["summary"]["records"] == name.count("lonecr") + 1, name
    assert range_lines(tmp_path / "long.jsonl", 0, len(cases["long.jsonl"]), len(line) + 4) is None
    assert range_lines(tmp_path / "long.jsonl", 0, len(cases["long.jsonl"]), len(line) + 8) is not None
    assert range_lines(tmp_path / "gone.jsonl", 0, 10, 1 << 20) is None
    assert range_lines(tmp_path / "gz.jsonl", 0, 10, 1 << 20) is None

    from audiodata.readers import rawfile

    def failing(path: Any) -> Any:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(rawfile, "open_regular", failing)
    assert range_lines(tmp_path / "long.jsonl", 0, 10, 1 << 20) is None


def test_plain_settings_and_specs_only() -> None:
    """A dataset_info.json entry (renamed columns, tags, a declared formatting), an injected prompt or system, a
    template, pairs or transcript normalising change the record: the general path reads such runs."""
    from audiodata.pipeline.read import ReadSettings
    from audiodata.readers.spec import DialectSpec

    assert fused.usable_spec(DialectSpec()) and fused.usable_settings(ReadSettings(100))
    assert not fused.usable_spec(DialectSpec(formatting="sharegpt"))
    assert not fused.usable_spec(DialectSpec(columns={"audios": "clips"}))
    assert not fused.usable_spec(DialectSpec(tags={"role_tag": "speaker"}))
    for changed in ({"prompt": "p"}, {"system": "s"}, {"normalize": "basic"}):
        assert not fused.usable_settings(ReadSettings(100, **changed)), changed


def test_the_benchmark_corpus_takes_the_fused_pass(tmp_path: Path, analysers: dict[str, Analyser]) -> None:
    """lint_bench's corpus (five dialects, planted defects, copies): every record the general path finds clean is
    answered by the fused pass, equally (what makes text-only lint fast, checked without timing it)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        import convert_bench
        import lint_bench
    finally:
        sys.path.pop(0)
    path = tmp_path / "bench.jsonl"
    lint_bench._write_part(str(path), 0, 2000, 11, convert_bench.make_sentences(300, 11))
    an = analysers["auto"]
    clean = answered = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        _, expected = general(an, line)
        if expected is None:
            continue
        clean += 1
        answer = an.fused[0].record(orjson.loads(line))
        answered += answer is not None
        assert answer is None or answer == expected, line
    assert clean > 1900 and answered == clean
