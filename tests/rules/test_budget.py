"""Token budget: family token formulas, LLaMA-Factory's ``infer_seqlen`` replay, the text
estimate, ``check_budget`` and the B001/B002 rules built on it.

Every expectation below is computed by hand from the formulas in the LLaMA-Factory notes
(/work/shared/research/llamafactory.md, sections 2.5, 2.6 and 5E); the arithmetic is in
the comments so a failing number can be re-derived without reading the code under test.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from audiodata.budget import BudgetResult, check_budget, estimate_tokens, infer_seqlen
from audiodata.families import FAMILIES, ModelFamily, get_family
from audiodata.records import AUDIO_MARKER, ClipStats, Message, Record, SourceLoc
from audiodata.rules.audio_rules import AudioContext
from audiodata.rules.engine import check_audio
from audiodata.rules.registry import Severity

SR = 16000
QWEN = FAMILIES["qwen2-audio"]
SRC = SourceLoc("budget.jsonl", 0, 1)


def words(s: str) -> int:
    """Exact, hand-checkable text length: one token per whitespace-separated word."""
    return len(s.split())


def filler(n: int) -> str:
    """``n`` one-token words (under ``words``), with a leading space."""
    return " w" * n


def clip(seconds: float = 1.0, fld: str = "audios[0]") -> ClipStats:
    # A clean clip: 16 kHz mono, -3 dBFS peak, -20 dBFS RMS, nothing clipped (no A0xx rule fires).
    return ClipStats(fld, seconds, round(seconds * SR), SR, 1, -3.0, -20.0, 0.0)


def sft(*turns: tuple[str, str], system: str | None = None, tools: str | None = None) -> Record:
    msgs = [Message(role, text, f"messages[{i}].content") for i, (role, text) in enumerate(turns)]
    return Record("r", "sft", msgs, SRC, system=system, tools=tools)


def dpo(prompt: list[tuple[str, str]], chosen: str, rejected: str) -> Record:
    msgs = [Message(role, text, f"messages[{i}].content") for i, (role, text) in enumerate(prompt)]
    return Record(
        "r",
        "dpo",
        msgs,
        SRC,
        chosen=[Message("assistant", chosen, "chosen.value")],
        rejected=[Message("assistant", rejected, "rejected.value")],
    )


# ---------------------------------------------------------------------------
# Family formulas
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        # 0.02 s = 320 samples: L = ceil(320/160) = 2; n = ((2-1)//2 + 1 - 2)//2 + 1 = (-1)//2 + 1 = 0 -> 0 + bos/eos = 2
        (0.02, 2),
        # 0.1 s = 1600 samples: L = 10; n = (9//2 + 1 - 2)//2 + 1 = 3//2 + 1 = 2 -> 4 (LF's dummy audio: 2 tokens)
        (0.1, 4),
        # 1 s = 16000 samples: L = 100; n = (99//2 + 1 - 2)//2 + 1 = 48//2 + 1 = 25 -> 27
        (1.0, 27),
        # 30 s = 480000 samples: L = 3000; n = (2999//2 + 1 - 2)//2 + 1 = 1498//2 + 1 = 750 -> 752
        (30.0, 752),
        # 45 s: L = min(4500, 3000) = 3000 -> capped at 752
        (45.0, 752),
    ],
)
def test_qwen2_audio_tokens(seconds: float, expected: int) -> None:
    assert QWEN.audio_tokens(round(seconds * SR)) == expected


def test_qwen2_audio_token_edges() -> None:
    f = QWEN.audio_tokens
    # <= 320 samples: 0 audio tokens (bos + eos only); 321..640 samples: L = 3 or 4 -> n = 1.
    assert [f(0), f(1), f(320)] == [2, 2, 2]
    assert [f(321), f(640)] == [3, 3]
    # 641 samples: L = 5; n = (4//2 + 1 - 2)//2 + 1 = 1//2 + 1 = 1; 961: L = 7, n = (3+1-2)//2 + 1 = 2.
    assert [f(641), f(961)] == [3, 4]
    # The cap: anything from exactly 30 s on is the same.
    assert f(30 * SR) == f(30 * SR + 1) == f(3600 * SR) == 752
    # Monotone up to the cap.
    seq = [f(n) for n in range(0, 31 * SR, 997)]
    assert seq == sorted(seq)


def test_qwen25_omni_matches_qwen2_audio() -> None:
    omni = FAMILIES["qwen2.5-omni"]
    for samples in [0, 1, 320, 321, 640, 1600, 16000, 123457, 30 * SR, 30 * SR + 1, 45 * SR]:
        assert omni.audio_tokens(samples) == QWEN.audio_tokens(samples), samples


def test_minicpm_tokens_per_second_and_no_cap() -> None:
    f = FAMILIES["minicpm-o"].audio_tokens
    # One 1 s chunk: frames = 100, cnn = 99//2 + 1 = 50, (50-2)//2 + 1 = 25, + 2 boundary tokens = 27.
    assert f(SR) == 27
    # Whole seconds are independent chunks: k s -> 27 k, with no 30 s cap.
    assert f(30 * SR) == 30 * 27 == 810
    assert f(45 * SR) == 45 * 27 == 1215
    assert f(60 * SR) == 2 * f(30 * SR) == 1620
    assert f(45 * SR) > f(30 * SR) > QWEN.audio_tokens(45 * SR)
    # 1.5 s: 27 + a half chunk (8000 samples: frames 50, cnn 25, (25-2)//2 + 1 = 12, + 2 = 14) = 41.
    assert f(SR + SR // 2) == 41
    # Linear growth past 30 s: every extra second adds the same 27.
    diffs = {f((s + 1) * SR) - f(s * SR) for s in range(30, 90)}
    assert diffs == {27}


def test_window_seconds() -> None:
    assert FAMILIES["qwen2-audio"].window_seconds == 30
    assert FAMILIES["qwen2.5-omni"].window_seconds == 30
    assert FAMILIES["minicpm-o"].window_seconds is None


def test_get_family() -> None:
    assert get_family("qwen2-audio") is QWEN
    with pytest.raises(ValueError, match="nope") as exc:
        get_family("nope")
    for name in ("qwen2-audio", "qwen2.5-omni", "minicpm-o"):
        assert name in str(exc.value)


# ---------------------------------------------------------------------------
# infer_seqlen (LLaMA-Factory data/processor/processor_utils.py)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "cutoff", "expected"),
    [
        # fits: 2*200 = 400 < 1024 -> max_target = 1024, target 200 kept, source min(824, 100) = 100
        (100, 200, 1024, (100, 200)),
        # short target: 2*100 < 1024 -> target 100 kept; source = min(1024 - 100, 3000) = 924
        (3000, 100, 1024, (924, 100)),
        # short source: 2*3000 >= 1024, 2*100 < 1024 -> max_target = 1024 - 100 = 924; source 100 kept
        (100, 3000, 1024, (100, 924)),
        # both long: max_target = int(1024 * 1000/4000) = 256; source = 1024 - 256 = 768
        (3000, 1000, 1024, (768, 256)),
        # both long, inexact: int(1000 * 600/2600) = int(230.77) = 230; source = 1000 - 230 = 770
        (2000, 600, 1000, (770, 230)),
        # both long, equal: int(100 * 0.5) = 50 each
        (80, 80, 100, (50, 50)),
        # no budget at all: everything goes
        (10, 10, 0, (0, 0)),
    ],
)
def test_infer_seqlen_by_hand(source: int, target: int, cutoff: int, expected: tuple[int, int]) -> None:
    assert infer_seqlen(source, target, cutoff) == expected


def test_infer_seqlen_never_exceeds_cutoff() -> None:
    values = [0, 1, 2, 3, 7, 50, 99, 100, 101, 255, 511, 512, 513, 1000, 2047, 2048, 4096]
    for s, t, c in itertools.product(values, values, [1, 2, 10, 100, 511, 512, 1024, 2048]):
        ns, nt = infer_seqlen(s, t, c)
        assert 0 <= ns <= s and 0 <= nt <= t, (s, t, c)
        assert ns + nt <= c, (s, t, c)
        if s + t > c:  # when something must go, the whole budget is used
            assert ns + nt == c, (s, t, c)


# ---------------------------------------------------------------------------
# estimate_tokens
# ---------------------------------------------------------------------------


def test_estimate_empty() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("   \n\t ") == 0


def test_estimate_english_sentence() -> None:
    sentence = "The quick brown fox jumps over the lazy dog while the internationalization committee deliberates"
    n = len(sentence.split())  # 14 words
    est = estimate_tokens(sentence)
    assert 0.8 * n <= est <= 2 * n
    # 11 words of <= 6 letters -> 1 each; "internationalization" (20 letters) -> ceil(20/6) = 4;
    # "committee" (9) -> 2; "deliberates" (11) -> 2
    assert est == 11 * 1 + 4 + 2 + 2


def test_estimate_digits_one_each() -> None:
    assert estimate_tokens("12345") == 5
    assert estimate_tokens("in 2024") == 1 + 4
    assert estimate_tokens("3.14") == 3 + 1  # 3 digits + the dot


def test_estimate_cjk_one_each() -> None:
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("こんにちは") == 5  # hiragana
    assert estimate_tokens("안녕하세요") == 5  # hangul syllables
    assert estimate_tokens("你好 world") == 2 + 1


def test_estimate_cjk_and_digits_after_other_scripts() -> None:
    # "digits and CJK characters one token each" (module docstring) whatever precedes them.
    assert estimate_tokens("é你好世界") >= 1 + 4
    assert estimate_tokens("Привет你好") >= 2 + 2  # ceil(6/3) + 2 CJK
    assert estimate_tokens("２０２４年") >= 4 + 1  # fullwidth digits, common in Japanese text
    assert estimate_tokens("١٢٣") >= 3


def test_estimate_never_below_word_count_for_english_words() -> None:
    rng = random.Random(1234)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for _ in range(300):
        ws = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 25))) for _ in range(rng.randint(0, 40))]
        text = rng.choice([" ", "  ", "\n", " \t"]).join(ws)
        est = estimate_tokens(text)
        assert est >= len(text.split()), text
        # Each word is ceil(len/6) tokens, so the estimate is exactly the sum.
        assert est == sum(-(-len(w) // 6) for w in ws)


# ---------------------------------------------------------------------------
# check_budget
# ---------------------------------------------------------------------------

# The qwen2-audio default system "You are a helpful assistant." is 5 words: system segment = 5 + 5 = 10.


def budget(
    rec: Record, clips: list[ClipStats], cutoff: int, family: ModelFamily = QWEN, count: Callable[[str], int] = words
) -> BudgetResult:
    return check_budget(rec, clips, family, cutoff, count)


def test_budget_fits() -> None:
    rec = sft(("user", "<audio> what is said here"), ("assistant", "hello there friend"))
    assert QWEN.system_overhead + words(QWEN.default_system) == 10
    b = budget(rec, [clip()], 2048)
    # system 10 + user overhead 8 + audio 27 + " what is said here" 4 + assistant overhead 2 + 3 words = 54
    assert b.total == 10 + 8 + 27 + 4 + 2 + 3 == 54
    assert b.audio == 27
    assert b.text == 10 + 8 + 4 + 2 + 3
    assert b.cut_audio == []
    assert b.cut_text == 0
    # Exactly at the cutoff nothing is cut either.
    exact = budget(rec, [clip()], 54)
    assert (exact.cut_audio, exact.cut_text) == ([], 0)
    # One token less: the prompt loses its last text token (target 5 is short: kept whole).
    tight = budget(rec, [clip()], 53)
    assert (tight.cut_audio, tight.cut_text) == ([], 1)


def test_budget_audio_at_start_of_long_turn_cuts_only_text() -> None:
    rec = sft(("user", "<audio>" + filler(300)), ("assistant", "ok"))
    b = budget(rec, [clip()], 200)
    # source = 10 + 8 + [audio at 18..45) + 300 = 345; target = 2 + 1 = 3
    # infer_seqlen(345, 3, 200): 2*3 < 200 -> target kept, source = 200 - 3 = 197 >= 45: audio survives
    assert b.total == 345 + 3
    assert b.cut_audio == []
    assert b.cut_text == 345 - 197 == 148


def test_budget_audio_at_end_of_long_turn_is_cut() -> None:
    rec = sft(("user", filler(300) + " <audio>"), ("assistant", "ok"))
    b = budget(rec, [clip()], 200)
    # source = 10 + 8 + 300 + [audio at 318..345) = 345; source kept = 197 < 345: the whole clip span is past it
    assert b.total == 348
    assert b.cut_audio == ["audios[0]"]
    assert b.cut_text == 345 - 197 - 27 == 121  # the audio tokens are not counted as text
    # Raising the cutoff to the total fixes it.
    assert budget(rec, [clip()], 348).cut_audio == []


def test_budget_audio_partly_cut() -> None:
    rec = sft(("user", "intro <audio> outro words here now"), ("assistant", "ok"))
    # source = 10 + 8 + 1 + [audio 19..46) + 4 = 50; target 3; total 53
    # cutoff 40: infer_seqlen(50, 3, 40) -> (37, 3): keep 37 lands inside the clip (19..46)
    b = budget(rec, [clip()], 40)
    assert b.cut_audio == ["audios[0]"]
    assert b.cut_text == 50 - 37 - (46 - 37) == 4  # only the 4 trailing words are text
    # cutoff 49: keep 46 = the clip's end: only text goes
    b = budget(rec, [clip()], 49)
    assert (b.cut_audio, b.cut_text) == ([], 4)


def test_budget_multi_turn_later_audio_dropped() -> None:
    rec = sft(
        ("user", filler(100)),
        ("assistant", filler(100)),
        ("user", "<audio> what"),
        ("assistant", "fine"),
    )
    b = budget(rec, [clip()], 200)
    # turn 1: source = 10 + 8 + 100 = 118, target = 2 + 100 = 102
    #   infer_seqlen(118, 102, 200): 204 >= 200, 236 >= 200 -> max_target = int(200 * 102/220) = 92, source 108
    #   used = 200 >= cutoff: turn 2 (source 8 + 27 + 1 = 36, target 3) is dropped whole
    assert b.total == 118 + 102 + 36 + 3 == 259
    assert b.cut_audio == ["audios[0]"]
    assert b.cut_text == (118 - 108) + (102 - 92) + (36 + 3 - 27) == 32
    # With room left for turn 2's text but not its audio: cutoff 240 -> turn 1 whole (220), 20 left:
    #   infer_seqlen(36, 3, 20): 6 < 20 -> target 3, source 17 < 8 + 27 = 35: the clip is cut
    b = budget(rec, [clip()], 240)
    assert b.cut_audio == ["audios[0]"]
    # With enough room nothing is cut.
    b = budget(rec, [clip()], 259)
    assert (b.cut_audio, b.cut_text) == ([], 0)


def test_budget_multi_turn_only_later_clip_is_cut() -> None:
    rec = sft(
        ("user", "<audio> first"),
        ("assistant", filler(150)),
        ("user", filler(10) + " <audio>"),
        ("assistant", "ok"),
    )
    clips = [clip(fld="audios[0]"), clip(fld="audios[1]")]
    b = budget(rec, clips, 200)
    # turn 1: source 10 + 8 + 27 + 1 = 46, target 152 -> 198 fits; turn 2 gets 2 tokens: the second clip goes
    assert b.audio == 2 * 27
    assert b.cut_audio == ["audios[1]"]


def test_budget_dpo_prompt_end_audio_cut_by_longest_response() -> None:
    prompt = [("user", filler(100) + " <audio>")]
    # prompt = 10 + 8 + 100 + [audio 118..145) = 145
    long_chosen = dpo(prompt, filler(300), "ok")  # chosen = 2 + 300 = 302, rejected = 3
    b = budget(long_chosen, [clip()], 280)
    # infer_seqlen(145, 302, 280): 604 >= 280, 290 >= 280 -> max_target = int(280 * 302/447) = int(189.17) = 189
    #   prompt kept = 280 - 189 = 91 < 118: the clip is cut
    assert b.total == 145 + 302
    assert b.cut_audio == ["audios[0]"]
    assert b.cut_text == (145 - 91 - 27) + (302 - 189) == 140
    # The longest response counts, whichever side it is on.
    long_rejected = dpo(prompt, "ok", filler(300))
    assert budget(long_rejected, [clip()], 280) == b
    # Both short: 145 + 3 = 148 <= 280, nothing is cut.
    short = dpo(prompt, "ok", "no")
    b = budget(short, [clip()], 280)
    assert (b.total, b.cut_audio, b.cut_text) == (148, [], 0)


def test_budget_dpo_long_response_only_text_cut() -> None:
    rec = dpo([("user", "<audio>" + filler(100))], filler(300), "ok")
    # prompt 145 with the clip at 18..45; kept 91 >= 45 -> only text is lost
    b = budget(rec, [clip()], 280)
    assert b.cut_audio == []
    assert b.cut_text == (145 - 91) + (302 - 189) == 167


def test_budget_record_system_replaces_default() -> None:
    turns = (("user", "<audio> what is said here"), ("assistant", "hello there friend"))
    default = budget(sft(*turns), [clip()], 2048)
    own = budget(sft(*turns, system="Be brief."), [clip()], 2048)
    # system segment: 5 + count("Be brief.") = 5 + 2 = 7 instead of 10
    assert default.total - own.total == 3
    assert own.total == 7 + 8 + 27 + 4 + 2 + 3 == 51
    # Tools are counted on top of the system prompt.
    tools = budget(sft(*turns, system="Be brief.", tools='{"name": "f"} x y'), [clip()], 2048)
    assert tools.total == own.total + 4
    # A long own system prompt is what pushes the audio out.
    rec = sft(("user", "<audio> hi"), ("assistant", "ok"), system=filler(100))
    assert budget(rec, [clip()], 120).cut_audio == ["audios[0]"]  # audio at 5 + 100 + 8 = 113..140 > 117


def test_budget_uses_family_and_counter() -> None:
    rec = sft(("user", "<audio> hi"), ("assistant", "ok"))
    mini = FAMILIES["minicpm-o"]
    b = budget(rec, [clip(45.0)], 4096, family=mini)
    assert b.audio == 45 * 27  # no cap under minicpm-o
    b = budget(rec, [clip(45.0)], 4096)
    assert b.audio == 752  # capped under qwen2-audio
    # Text comes only from the counter (plus the template overheads 5 + 8 + 2).
    assert budget(rec, [clip()], 4096, count=lambda s: 0).text == 5 + 8 + 2
    # estimate_tokens: "You are a helpful assistant." = 1+1+1+2+2+1 = 8, " hi" = 1, "ok" = 1
    assert budget(rec, [clip()], 4096, count=estimate_tokens).text == 5 + 8 + 8 + 1 + 2 + 1


# ---------------------------------------------------------------------------
# B001 / B002 through the rule engine
# ---------------------------------------------------------------------------


def audio_findings(rec: Record, clips: list[ClipStats], family: ModelFamily | None = QWEN, cutoff: int = 200) -> list:
    return check_audio(rec, AudioContext(clips, family=family, cutoff_len=cutoff, count_tokens=words))


def test_b001_when_audio_tokens_cut() -> None:
    rec = sft(("user", filler(300) + " <audio>"), ("assistant", "ok"))
    found = audio_findings(rec, [clip()])
    assert [(f.code, f.field) for f in found] == [("B001", "audios[0]")]
    f = found[0]
    assert f.severity is Severity.ERROR
    assert f.source == SRC
    assert "348" in f.message and "audios[0]" in f.message  # ~348 tokens, and which clip


def test_b002_when_only_text_cut() -> None:
    rec = sft(("user", "<audio>" + filler(300)), ("assistant", "ok"))
    found = audio_findings(rec, [clip()])
    assert [f.code for f in found] == ["B002"]
    assert found[0].severity is Severity.WARNING
    assert "148" in found[0].message  # about 148 text tokens would be cut


def test_no_budget_findings_when_it_fits() -> None:
    rec = sft(("user", "<audio> hi"), ("assistant", "ok"))
    assert audio_findings(rec, [clip()]) == []


def test_no_budget_findings_without_family() -> None:
    for rec in (
        sft(("user", filler(300) + " <audio>"), ("assistant", "ok")),
        sft(("user", "<audio>" + filler(300)), ("assistant", "ok")),
    ):
        assert audio_findings(rec, [clip()], family=None) == []


@pytest.mark.parametrize("n_clips", [0, 2])
def test_no_budget_findings_on_marker_mismatch(n_clips: int) -> None:
    rec = sft(("user", filler(300) + " " + AUDIO_MARKER), ("assistant", "ok"))
    clips = [clip(fld=f"audios[{i}]") for i in range(n_clips)]
    found = audio_findings(rec, clips)
    assert not [f for f in found if f.code.startswith("B")]
    # The same record with matching clips does fire: the check above is not vacuous.
    assert [f.code for f in audio_findings(rec, [clip()])] == ["B001"]
