"""One test per rule: each fires on a record that has the problem and stays quiet on its repaired twin.

Every registered code must have a case (lint's here; export's and verify's in their test modules), so a new
rule cannot land without both tests.
Records go through ``lint`` end to end (reader, schema, rules, audio stage, duplicates).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr

import audiodata
from audiodata.pipeline.dedup import dedup
from audiodata.pipeline.lint import lint
from audiodata.rules.registry import REGISTRY, Severity
from tests.conftest import SAMPLE, tone, write_audio, write_jsonl, write_png, write_video


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rules") / "m"
    write_audio(root / "a.wav", 2.0)
    write_audio(root / "b.wav", 2.0, freq=660.0)
    write_audio(root / "long.wav", 31.0, rate=8000)  # over the 30 s window (and 8 kHz: small file)
    write_audio(root / "phone.wav", 1.0, rate=8000)
    write_audio(root / "ten.wav", 10.0)
    for k in range(12):  # distinct clips for the dataset-rate rule (no duplicate or conflict findings)
        write_audio(root / f"v{k}.wav", 2.0, freq=300.0 + 40 * k)
    sf.write(root / "silent.wav", np.zeros(32000, np.float32), 16000)
    square = np.sign(np.sin(2 * np.pi * 200 * np.arange(32000) / 16000)).astype(np.float32)
    sf.write(root / "clipped.wav", square, 16000)
    full = (root / "a.wav").read_bytes()
    (root / "truncated.wav").write_bytes(full[: len(full) // 2])  # header still says 2 s
    sf.write(root / "empty.wav", np.zeros(0, np.float32), 16000)
    write_audio(root / "short.wav", 0.05)
    floats = tone(2.0).reshape(-1, 1).copy()
    sf.write(root / "float.wav", floats, 16000, subtype="FLOAT")  # finite float samples: stored
    floats[5000:5010] = np.nan
    sf.write(root / "nan.wav", floats, 16000, subtype="FLOAT")
    (root / "noise.wav").write_bytes(b"this is not audio at all" * 20)
    write_audio(root.parent / "outside.wav", 1.0)
    (root / "broken.jsonl.gz").write_bytes(b"\x1f\x8bnot really gzip")
    (root / "bomb.jsonl.gz").write_bytes(gzip.compress(b" " * (32 * 2**20), 9))  # 32 MiB of spaces in 32 kB: 1000x
    (root / "utf16.jsonl").write_bytes((json.dumps(sft()) + "\n").encode("utf-16"))  # with a BOM, little-endian here
    (root / "repetitive.jsonl.gz").write_bytes(gzip.compress((json.dumps(sft()) + "\n").encode() * 200))  # >100x, small
    (root / "utf8-bom.jsonl").write_bytes(("\ufeff" + json.dumps(sft(answer="Grüße, 音声.")) + "\n").encode("utf-8"))
    write_png(root / "p.png")
    write_png(root / "big.png", 200, 200)  # about 120 kB: over a 100 kB bound that a.wav (64 kB) is under
    write_png(root.parent / "outside.png")
    (root / "fake.png").write_bytes(b"GIF89a but not really an image" * 4)
    write_video(root / "v.mp4")
    speech, sr = sf.read(SAMPLE / "audio" / "clip02_22k.wav", dtype="float32")  # real espeak-ng speech, 3.95 s
    sf.write(root / "speech.wav", speech, sr)
    sf.write(root / "speech-gain.wav", speech * 0.5, sr)  # the same recording, re-gained: a near copy
    sf.write(root / "speech-fast.wav", soxr.resample(speech, sr, int(sr / 1.12)), sr)  # same words, 12% faster: not one
    audiodata.convert([str(write_jsonl(root.parent / "test.jsonl", [sft(audios=["m/speech.wav"])]))],
                      root.parent / "test-split", num_workers=1)  # fmt: skip
    write_audio(root / "sub.wav", 4.0)
    write_audio(root / "subok.wav", 4.0)
    cues = "1\n00:00:00,500 --> 00:00:01,800\nHello there.\n\n2\n00:00:02,000 --> 00:00:03,500\nGood to see you.\n"
    (root / "subok.srt").write_text(cues)
    (root / "sub.srt").write_text(cues.replace("00:00:00,500 --> 00:00:01,800", "00:00:01,800 --> 00:00:00,500"))
    return root


def sft(user: str = "<audio>What is said?", answer: str = "Hello there.", audios: Any = ("a.wav",), **extra: Any) -> dict:
    rec: dict[str, Any] = {"conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": answer}]}
    if audios is not None:
        rec["audios"] = list(audios)
    return {**rec, **extra}


def turns(*pairs: tuple[str, Any]) -> dict:
    return {"conversations": [{"from": r, "value": v} for r, v in pairs], "audios": ["a.wav"]}


def dpo(chosen: Any = None, rejected: Any = None, prompt: str = "<audio>Summarise.", **extra: Any) -> dict:
    return {
        "conversations": [{"from": "human", "value": prompt}],
        "chosen": chosen or {"from": "gpt", "value": "A short summary."},
        "rejected": rejected or {"from": "gpt", "value": "No idea."},
        "audios": ["a.wav"],
        **extra,
    }


def swift_pair(rejected_prompt: str = "<audio>Summarise.") -> dict:
    """ms-swift's rejected_messages form (Custom-dataset.md, DPO section): the whole rejected conversation."""
    return {
        "messages": [{"role": "user", "content": "<audio>Summarise."}, {"role": "assistant", "content": "A short summary."}],
        "audios": "a.wav",
        "rejected_messages": [{"role": "user", "content": rejected_prompt}, {"role": "assistant", "content": "No idea."}],
        "rejected_audios": "a.wav",
    }


def rl(answer: Any = "Hello there.", prompt: str = "<audio>What is said?", **extra: Any) -> dict:
    """A TRL GRPO row (trl/trainer/grpo_trainer.py: prompt + the columns the rewards read), as audiodata reads it."""
    return {"prompt": [{"role": "user", "content": prompt}], "answer": answer, "audios": ["a.wav"], **extra}


def swift_rl(reply: str | None = None) -> dict:
    """An ms-swift GRPO row (Custom-dataset.md, "PPO/GRPO"): messages + solution, maybe ending on a reply GRPO drops."""
    turns = [{"role": "user", "content": "<audio>Who?"}] + ([{"role": "assistant", "content": reply}] if reply else [])
    return {"messages": turns, "solution": "A man", "audios": ["a.wav"]}


LONG = " ".join(["word"] * 400)


def nemo(audio: str, duration: float) -> dict:
    return {"audio_filepath": audio, "duration": duration, "text": "Hello there, how are you today?"}


def nemo_hyp(text: str, hyp: str | None) -> dict:
    """A NeMo line as transcribe_speech.py writes it: the reference and the hypothesis (``pred_text``; None: absent)."""
    return {"audio_filepath": "a.wav", "duration": 2.0, "text": text, **({"pred_text": hyp} if hyp is not None else {})}


def wav_base64() -> str:
    buf = io.BytesIO()
    sf.write(buf, tone(1.0), 16000, format="WAV")
    return base64.b64encode(buf.getvalue()).decode()


B64 = wav_base64()


def asr(answer: str, audio: str = "a.wav") -> dict:
    """A transcription record (the R rules measure these only)."""
    return sft(user="<audio>Transcribe the audio.", answer=answer, audios=[audio])


# Transcripts of 18-26 letters on 2 s clips (9-13 letters/s); the outlier has 46 letters (23/s: under
# R001's 25/s, but twice this corpus's median).
SENTENCES = [
    "Good morning to you all.",
    "The cat sat on the mat.",
    "Please close the door.",
    "It rains again today.",
    "We meet at noon sharp.",
    "Call me back later on.",
    "The bus is late again.",
    "She reads every night.",
    "Turn the lights off now.",
    "Bread is baking slowly.",
]
RATES = [asr(t, f"v{k}.wav") for k, t in enumerate(SENTENCES)]
LOWER = [asr(t.lower().rstrip("."), f"v{k}.wav") for k, t in enumerate(SENTENCES[:10])]
VERBATIM = [asr(("uh " if k % 2 else "") + t.lower().rstrip("."), f"v{k}.wav") for k, t in enumerate(SENTENCES[:10])]
CLEAN = [asr(t.lower().rstrip("."), f"v{k % 12}.wav") for k, t in enumerate(SENTENCES * 2)][:20]
SWAPPED = asr("Please call Stella and ask her to bring these things.", "v10.wav")

# code -> (records with the problem, the same records repaired, lint options). The problem is on the LAST record.
CASES: dict[str, tuple[list[Any], list[Any], dict[str, Any]]] = {
    "F001": (['{"conversations": [broken'], [sft()], {}),
    "F002": ([[1, 2, 3]], [sft()], {}),
    "F003": ([{"foo": 1, "bar": 2}], [sft()], {}),
    "F004": ([], [sft()], {"file": "broken.jsonl.gz"}),
    "F005": ([sft(answer="x" * 3000)], [sft(answer="x" * 10)], {"max_record_bytes": 2000}),
    "F008": ([], [sft()], {"file": "bomb.jsonl.gz", "quiet_file": "repetitive.jsonl.gz"}),
    "F009": ([], [sft()], {"file": "utf16.jsonl", "quiet_file": "utf8-bom.jsonl"}),
    "F006": ([], [sft()], {"skip": "registry entries, not records: tests/export/test_peer_llamafactory.py"}),
    "F007": ([], [sft()], {"skip": "unnamed files, not records: tests/export/test_peer_llamafactory.py"}),
    "S001": ([sft(answer=7)], [sft()], {"ignore": ["S005"]}),  # the schema (S005) reports it first otherwise
    "S002": ([turns(("narrator", "<audio>hi"), ("gpt", "x"))], [sft()], {}),
    "S003": (
        [turns(("gpt", "x"), ("human", "<audio>y"))],
        [sft()],
        {},
    ),
    "S004": ([sft(answer="   ")], [sft()], {}),
    "S005": ([sft(id=1.5)], [sft(id=15)], {}),
    "P002": ([sft(kto_tag="true")], [sft(kto_tag=True), sft(answer="I don't know.", kto_tag=False)], {}),
    "P003": ([sft(kto_tag=True)], [sft(kto_tag=True), sft(answer="I don't know.", kto_tag=False)], {}),
    "S006": ([dpo(chosen={"from": "human", "value": "x"})], [dpo()], {}),
    "S007": (
        [turns(("human", "<audio>a"), ("gpt", "b"), ("human", "c"))],
        [sft()],
        {},
    ),
    "S008": ([turns(("human", "<audio>q"), ("bot", "a"))], [sft()], {}),
    "S010": ([swift_pair(rejected_prompt="<audio>Summarise briefly.")], [swift_pair()], {}),
    "T001": ([sft(answer="caf\ufffd")], [sft(answer="café")], {}),
    "P001": ([dpo(rejected={"from": "gpt", "value": "A short summary."})], [dpo()], {}),
    "M001": ([sft(user="<audio><audio>Compare.")], [sft(user="<audio>Compare.")], {}),
    "M002": ([dpo(chosen={"from": "gpt", "value": "<audio> is about cats"}, prompt="Summarise.")], [dpo()], {}),
    "M003": ([sft(system="Listen to <audio> carefully")], [sft(system="Listen carefully")], {}),
    "M004": ([sft(user="<audio>Describe <image>.")], [sft(user="<audio>Describe <image>.", images=["p.png"])], {}),
    "M005": ([sft(user="<audio>Say <|AUDIO|> twice.")], [sft(user="<audio>Say it twice.")], {}),
    # Omni records, LLaMA-Factory's mllm_video_audio_demo form (data/dataset_info.json: "videos" + "audios" columns)
    "M006": (
        [sft(user="<audio><video>What happens?", videos=["v.mp4"])],
        [sft(user="<video><audio>What happens?", videos=["v.mp4"])],
        {},
    ),
    "S030": ([sft(user="<audio><image>x", images=["missing.png"])], [sft(user="<audio><image>x", images=["p.png"])], {}),
    "S031": ([sft(user="<audio><image>x", images=["../outside.png"])], [sft(user="<audio><image>x", images=["p.png"])], {}),
    "S032": (
        [sft(user="<audio><video>x", videos=["https://example.com/v.mp4"])],
        [sft(user="<audio><video>x", videos=["v.mp4"])],
        {},
    ),
    "S033": ([sft(user="<audio><image>x", images=["fake.png"])], [sft(user="<audio><image>x", images=["p.png"])], {}),
    "S034": (
        [sft(user="<audio><image>x", images=["big.png"])],
        [sft(user="<audio><image>x", images=["p.png"])],
        {"max_audio_bytes": 100_000},
    ),
    "A001": ([sft(audios=["missing.wav"])], [sft()], {}),
    "A002": ([sft(audios=["../outside.wav"])], [sft()], {"strict": True}),
    "A003": ([sft(audios=["https://example.com/a.wav"])], [sft()], {}),
    "A004": ([sft(audios=["data:audio/wav;base64,@@@not base64@@@"])], [sft(audios=["data:audio/wav;base64," + B64])], {}),
    "A005": ([sft(audios=["noise.wav"])], [sft()], {}),
    "A006": ([sft(audios=["empty.wav"])], [sft()], {}),
    "A007": ([sft(audios=["short.wav"])], [sft()], {}),
    "A008": ([sft(audios=["long.wav"])], [sft()], {}),
    "A009": ([sft(audios=["phone.wav"])], [sft()], {}),
    "A010": ([], [sft()], {"skip": "needs PyAV removed; covered in tests/audio/test_audio_stage.py"}),
    "A011": ([sft(audios=["ten.wav"])], [sft()], {"max_duration": 5.0}),
    "A015": ([sft(audios=["nan.wav"])], [sft(audios=["float.wav"])], {}),
    # a NeMo line (audiodata.readers.dialects.nemo): the whole 31 s file, one transcript, over the 30 s window
    "A017": ([nemo("long.wav", 31.0)], [nemo("a.wav", 2.0)], {}),
    "F010": ([sft()], [sft()], {"file": "sub.srt", "quiet_file": "subok.srt"}),  # a cue that ends before it starts
    "A016": ([], [sft()], {"skip": "needs a MemoryError: tests/audio/test_audio_hostile.py injects one (in process, in a pool)"}),
    "A012": ([sft(audios=["silent.wav"])], [sft()], {}),
    "A013": ([sft(audios=["clipped.wav"])], [sft()], {}),
    "A014": ([sft(duration=9.0)], [sft(duration=2.0)], {}),
    "B001": ([sft(user=LONG + " <audio>")], [sft(user=" ".join(["word"] * 40) + " <audio>")], {"family": True}),
    "B002": ([sft(answer=LONG)], [sft(answer=" ".join(["word"] * 40))], {"family": True}),
    "D001": ([sft(), sft(user="<audio>Other?"), sft()], [sft(), sft(user="<audio>Other?"), sft(audios=["b.wav"])], {}),
    # near copies and leaks need acoustic fingerprints: `audiodata dedup` finds them (lint checks exact copies only)
    "D002": (
        [sft(audios=["speech.wav"]), sft(audios=["speech-gain.wav"])],
        [sft(audios=["speech.wav"]), sft(audios=["speech-fast.wav"])],
        {"dedup": True},
    ),
    "D003": ([sft(), sft(answer="Something else.")], [sft(), sft(user="<audio>Other?", answer="Something else.")], {}),
    "D004": (
        [sft(audios=["b.wav"]), sft(audios=["speech-gain.wav"])],
        [sft(audios=["b.wav"]), sft(audios=["speech-fast.wav"])],
        {"dedup": True, "against": "test-split"},
    ),
    # pairs from an ASR corpus: the hypothesis column equals the transcript (P004), or the line has none (P005)
    "P004": (
        [nemo_hyp("Hello there.", " Hello   there.")],
        [nemo_hyp("Hello there.", "hello there")],
        {"columns": {"rejected": "pred_text"}},
    ),
    "P005": ([nemo_hyp("Hello there.", None)], [nemo_hyp("Hello there.", "hello there")], {"columns": {"rejected": "pred_text"}}),
    # RL records: the reference answer a reward checks (rules/rl_rules.py)
    "Q001": ([rl(answer="  ")], [rl(answer="x")], {}),
    "Q002": ([rl(answer="Man", choices=["Man", "man "])], [rl(answer="Man", choices=["Man", "Woman", "Woman"])], {}),
    "Q003": ([rl(answer="Child", choices=["Man", "Woman"])], [rl(answer="B", choices=["Man", "Woman"])], {}),
    "Q004": (
        [rl(prompt="<audio>Transcribe. Reference: hello, there world", answer="Hello there world.", task="asr")],
        [rl(prompt="<audio>Transcribe; it starts with hello there.", answer="Hello there world.", task="asr")],
        {},
    ),
    "Q005": ([swift_rl("A man")], [swift_rl()], {}),
    "Q006": ([rl(answer=None, solution=["A", "B"])], [rl(answer=None, solution="A")], {}),
    "R001": ([asr("Please call Stella and ask her to bring these things with her from the store.")], [asr("Hello there.")], {}),
    "R002": ([asr("Yes okay.", "ten.wav")], [asr("Yes okay, " * 10, "ten.wav")], {}),
    "R003": ([asr("a b c d e f g h i j k l m n o p")], [asr("a b c d e f g h")], {}),
    "R004": (
        [asr("Supercalifragilisticexpialidocious.", "ten.wav")],
        [asr("Supercalifragilistic expialidocious is a word.", "ten.wav")],
        {},
    ),
    "R005": ([*RATES, SWAPPED], [*RATES, asr("Put the kettle on now.", "v10.wav")], {}),
    # ten lower-case transcripts, then one cased and punctuated under the same prompt (casing and punctuation mixed)
    "T002": ([*LOWER, asr("Turn left at the corner.")], [*LOWER, asr("turn left at the corner")], {}),
    # a first file writes fillers in half its transcripts; this one (20 under the same prompt) in none: the
    # finding is at this file's first record under the prompt; its twin has one filler
    "T003": (CLEAN, [*CLEAN[:-1], asr("uh so that was it then")], {"before": VERBATIM, "index": 0}),
}


def findings(media: Path, tmp_path: Path, records: list[Any], opts: dict[str, Any]) -> list[dict[str, Any]]:
    if "file" in opts:
        path = media / opts["file"]
    else:
        path = tmp_path / "in.jsonl"
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    inputs = [str(path)]
    if "before" in opts:  # a rule that compares input files: this one is read first
        inputs.insert(0, str(write_jsonl(tmp_path / "before.jsonl", opts["before"])))
    kw: dict[str, Any] = {"num_workers": 1, "media_root": str(media)}
    if opts.get("family"):
        kw.update(model_family="qwen2-audio", cutoff_len=256)
    if opts.get("strict"):
        kw["allow_absolute_paths"] = False
    for key in ("max_record_bytes", "max_duration", "ignore", "max_audio_bytes", "columns"):
        if key in opts:
            kw[key] = opts[key]
    if opts.get("dedup"):  # the command that reports near copies (D002) and leaks (D004)
        against = media.parent / opts["against"] if "against" in opts else None
        return dedup([str(path)], mode="near", against=against, **kw).to_dict()["findings"]
    return lint(inputs, **kw).to_dict()["findings"]


def test_every_rule_has_a_case():
    """Lint's rules here; the export targets' (X, tests/export/test_export.py) and verify's (V, tests/test_verify.py) there."""
    from tests.export.test_export import EXPORT_CASES
    from tests.test_verify import VERIFY_CASES

    assert set(CASES) == {c for c, r in REGISTRY.items() if r.stage not in ("export", "output")}
    assert set(CASES) | set(EXPORT_CASES) | set(VERIFY_CASES) == set(REGISTRY)


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_fires(code: str, media: Path, tmp_path: Path):
    bad, _, opts = CASES[code]
    if "skip" in opts:
        pytest.skip(opts["skip"])
    found = findings(media, tmp_path, bad, opts)
    hits = [f for f in found if f["code"] == code]
    assert hits, f"{code} did not fire: {found}"
    want_index = -1 if code in ("F004", "F008", "F009") else opts.get("index", len(bad) - 1)  # -1: the file as a whole
    assert {f["index"] for f in hits} == {want_index}
    assert all(f["severity"] == REGISTRY[code].severity.value and f["message"] for f in hits)


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_stays_quiet_on_the_repaired_record(code: str, media: Path, tmp_path: Path):
    _, good, opts = CASES[code]
    quiet = {k: v for k, v in opts.items() if k not in ("file", "quiet_file")}
    if "quiet_file" in opts:  # a file-level rule: its twin is a file that comes close to firing it
        quiet["file"] = opts["quiet_file"]
    found = findings(media, tmp_path, good, quiet)
    assert [f for f in found if f["code"] == code] == []
    assert not [f for f in found if f["severity"] == Severity.ERROR.value], found


def test_findings_are_located_to_the_field(media: Path, tmp_path: Path):
    records = [
        sft(),
        sft(answer=7),
        sft(audios=["a.wav", "missing.wav"], user="<audio><audio>x"),
        dpo(rejected={"from": "gpt", "value": "<audio>!"}),
    ]
    found = {(f["index"], f["code"]): f["field"] for f in findings(media, tmp_path, records, {})}
    assert found[(1, "S005")] == "conversations[1].value"
    assert found[(2, "A001")] == "audios[1]"
    assert found[(3, "M002")] == "rejected.value"


def test_gzip_and_line_numbers_are_reported(media: Path, tmp_path: Path):
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(sft()) + "\n\n" + json.dumps(sft(answer="")) + "\n")
    found = lint([str(path)], num_workers=1, media_root=str(media)).to_dict()["findings"]
    assert [(f["code"], f["index"], f["line"]) for f in found] == [("S004", 1, 3)]
