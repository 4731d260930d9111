"""Evaluation users can read: metrics held to hand computations and sacreBLEU's values, generation plumbing
driven by a scripted model (stop tokens, template leaks, rank shares), and the trainer end to end (slow)."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from trainer.metrics import corpus_bleu, normalize, score, tokenize_13a

# -- metrics: exact --------------------------------------------------------------------------------------------


def test_normalize_lowercases_strips_punctuation_and_collapses_spaces():
    assert normalize("  Hello,   World!  ") == "hello world"
    assert normalize("Don't STOP—now.") == "dont stop now"  # apostrophe inside a word dropped, dash a space
    assert normalize("'quoted'") == "quoted"
    assert normalize("ＡＢＣ　１２３") == "abc 123"  # NFKC: full-width letters, digits and space
    assert normalize("<|im_start|>assistant\nHi") == "im start assistant hi"  # a leaked marker still costs words
    assert normalize("Café naïve") == "café naïve"
    assert normalize("?!.,") == ""


def test_wer_is_corpus_edits_over_reference_words_by_hand():
    refs = ["The cat sat on the mat.", "hello world", "a b"]
    hyps = ["the cat sit on mat", "Hello, world!", "a x b"]
    s = score("wer", refs, hyps)
    # 1: sat->sit (S), "the" missing (D): 2 of 6; 2: equal after normalisation; 3: "x" inserted (I): 1 of 2
    assert (s.details["substitutions"], s.details["deletions"], s.details["insertions"]) == (1, 1, 1)
    assert s.details["hits"] == 4 + 2 + 2 and s.details["reference_words"] == 10
    assert s.value == pytest.approx(3 / 10)
    assert s.per_sample == pytest.approx([2 / 6, 0.0, 1 / 2])
    assert s.value != pytest.approx(sum(s.per_sample) / 3)  # a corpus figure, not a mean of rates
    assert (s.scored, s.unscored) == (3, 0)


def test_wer_empty_hypothesis_is_all_deletions_and_empty_reference_is_left_out():
    s = score("wer", ["one two three", "!!", ""], ["", "anything", "x"])
    assert s.per_sample == [1.0, None, None]
    assert s.value == 1.0 and (s.scored, s.unscored) == (1, 2)
    assert score("wer", [""], ["x"]).value is None


def test_cer_counts_characters_and_spaces_of_normalised_text():
    s = score("cer", ["abcd", "ab cd"], ["ABED", "abcd"])
    assert s.per_sample == pytest.approx([1 / 4, 1 / 5])  # c->e; the space deleted
    assert s.value == pytest.approx(2 / 9)


def test_exact_match_after_normalisation():
    s = score("exact_match", ["Left, at the light.", "Yes", "No"], ["left at the light", "yes!", "Nope"])
    assert s.per_sample == [1.0, 1.0, 0.0] and s.value == pytest.approx(2 / 3) and s.details["matches"] == 2


#: (references, hypotheses, BLEU) as sacreBLEU 2.6 ``corpus_bleu(hyps, [refs]).score`` gives them.
SACREBLEU = [
    (["the cat is on the mat"], ["the cat sat on the mat"], 37.99178428257963),
    (
        [
            "It is a guide to action which ensures that the military always obeys the commands of the party.",
            "he read the book because he was interested in world history",
        ],
        [
            "It is a guide to action that ensures that the military will forever heed Party commands.",
            "he was interested in world history because he read the book",
        ],
        52.04747170070416,
    ),
    (["Hello world!", "It costs 3.50 dollars today."], ["Hello, world!", "It costs 3.50 dollars."], 51.01372555037931),
    (["a b c d e f"], ["a b"], 0.0),  # no 3-gram at all in the hypothesis: 0 whatever the smoothing
    (["", ""], ["some words here", "cat"], 0.0),  # no matching token: 0
]


@pytest.mark.parametrize(("refs", "hyps", "expected"), SACREBLEU)
def test_bleu_matches_sacrebleu(refs: list[str], hyps: list[str], expected: float):
    assert corpus_bleu(refs, hyps).value == pytest.approx(expected, abs=1e-9)


def test_bleu_smoothing_and_brevity_by_hand():
    # 1-grams 3/4, 2-grams 1/3, 3-grams 0/2 -> 100/(2*2), 4-grams 0/1 -> 100/(4*1) ("exp" smoothing)
    s = corpus_bleu(["the quick brown fox"], ["the quick red fox"])
    assert s.details["precisions"] == pytest.approx([75.0, 33.3333, 25.0, 25.0], abs=1e-4)
    assert s.value == pytest.approx(math.exp((math.log(75) + math.log(100 / 3) + 2 * math.log(25)) / 4))
    assert s.value == pytest.approx(35.35533905932737)
    short = corpus_bleu(["one two three four five six"], ["one two three four"])
    assert short.details["brevity_penalty"] == pytest.approx(math.exp(1 - 6 / 4), abs=1e-6)
    assert short.value == pytest.approx(100 * math.exp(1 - 6 / 4))  # every n-gram of the hypothesis matches


def test_tokenize_13a_splits_punctuation_but_not_numbers():
    assert tokenize_13a("It costs $3.50, e-mail me.") == ["It", "costs", "$", "3.50", ",", "e-mail", "me", "."]
    assert tokenize_13a("1-2 &amp; (x)") == ["1", "-", "2", "&", "(", "x", ")"]


def test_score_refuses_unknown_metrics_and_misaligned_inputs():
    with pytest.raises(ValueError, match="unknown metric"):
        score("rouge", ["a"], ["a"])
    with pytest.raises(ValueError, match="1 references but 2 hypotheses"):
        score("wer", ["a"], ["a", "b"])


# -- which metric, which records ----------------------------------------------------------------------------------


def rows(records: list[dict[str, Any]]) -> Any:
    import datasets

    return datasets.Dataset.from_list(records)


def sft(rid: str, ask: str, reply: str, audio: bool = True) -> dict[str, Any]:
    user = ("<audio>" if audio else "") + ask
    return {"id": rid, "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}


def test_examples_take_the_last_reply_as_reference_and_count_records_without_one():
    from trainer.generation import examples_of

    multi = {
        "id": "m",
        "messages": [
            {"role": "user", "content": "<audio>What does the speaker say?"},
            {"role": "assistant", "content": "first"},
            {"role": "user", "content": "Again?"},
            {"role": "assistant", "content": "second"},
        ],
    }
    none = {"id": "n", "messages": [{"role": "user", "content": "<audio>hello"}]}
    found, without = examples_of(rows([multi, none, sft("s", "Transcribe this.", "ok")]), "sft")
    assert without == 1 and [e.id for e in found] == ["m", "s"]
    assert found[0].reference == "second" and [m["content"] for m in found[0].prompt][-1] == "Again?"
    assert found[0].clips == 1 and found[0].ask == "Again?"
    assert not found[0].transcription  # the last question is not a transcription request
    assert found[1].transcription and found[1].reference == "ok"


def test_examples_for_dpo_and_kto():
    from trainer.generation import examples_of

    prompt = [{"role": "user", "content": "<audio>What is said?"}]
    dpo = rows([{"id": "d", "messages": prompt, "chosen": [{"role": "assistant", "content": "right"}],
                 "rejected": [{"role": "assistant", "content": "wrong"}]}])  # fmt: skip
    found, _ = examples_of(dpo, "dpo")
    assert found[0].reference == "right" and found[0].transcription
    kto = rows([
        {"id": "good", "messages": prompt, "completion": [{"role": "assistant", "content": "yes"}], "label": True},
        {"id": "bad", "messages": prompt, "completion": [{"role": "assistant", "content": "no"}], "label": False},
    ])  # fmt: skip
    found, without = examples_of(kto, "kto")
    assert [e.id for e in found] == ["good"] and without == 1  # an undesirable reply is no reference


def test_auto_metric_is_wer_for_transcription_prompts_else_exact_match():
    from trainer.evaluate import choose_metric
    from trainer.generation import examples_of

    asr = examples_of(rows([sft(str(i), "What does the speaker say?", "x") for i in range(3)]), "sft")[0]
    qa = examples_of(rows([sft(str(i), "Where is the listener told to turn?", "x") for i in range(3)]), "sft")[0]
    assert choose_metric("auto", asr) == ("wer", "auto: 3 of 3 eval prompts ask for a transcript")
    assert choose_metric("auto", qa)[0] == "exact_match"
    assert choose_metric("auto", asr + qa)[0] == "wer"  # half or more
    assert choose_metric("auto", asr[:1] + qa)[0] == "exact_match"
    assert choose_metric("auto", qa, manifest_task="asr") == ("wer", "auto: the dataset was converted with --task asr")
    assert choose_metric("auto", asr, manifest_task="none")[0] == "exact_match"
    assert choose_metric("bleu", asr) == ("bleu", "eval_metric")
    text = examples_of(rows([sft("t", "What does the speaker say?", "x", audio=False)]), "sft")[0]
    assert not text[0].transcription  # no clip to transcribe


def test_pick_is_deterministic_by_seed_and_prefers_clips_for_the_fixed_samples():
    from trainer.evaluate import pick
    from trainer.generation import examples_of

    ex = examples_of(rows([sft(str(i), "Transcribe.", "x", audio=i % 3 == 0) for i in range(30)]), "sft")[0]
    chosen, fixed = pick(ex, 12, 4, seed=0)
    assert len(chosen) == 12 and len(fixed) == 4 and set(fixed) <= set(chosen)
    assert pick(ex, 12, 4, seed=0) == (chosen, fixed)
    assert pick(ex, 12, 4, seed=1) != (chosen, fixed)
    with_audio = [k for k in chosen if ex[k].clips]
    assert all(ex[k].clips for k in fixed) or set(with_audio) <= set(fixed)
    everything, _ = pick(ex, -1, 4, seed=0)
    assert everything == list(range(30))


def test_holdout_is_disjoint_seeded_and_never_takes_everything():
    from trainer.config import ConfigError
    from trainer.evaluate import holdout

    data = rows([sft(str(i), "q", "a") for i in range(20)])
    train, held = holdout(data, 0.25, seed=3)
    assert len(held) == 5 and len(train) == 15
    assert set(train["id"]).isdisjoint(held["id"]) and set(train["id"]) | set(held["id"]) == set(data["id"])
    assert holdout(data, 0.25, seed=3)[1]["id"] == held["id"] != holdout(data, 0.25, seed=4)[1]["id"]
    assert holdout(data, 0.0, seed=3) == (data, None)
    assert len(holdout(rows([sft("a", "q", "a"), sft("b", "q", "a")]), 0.9, seed=0)[0]) == 1
    with pytest.raises(ConfigError, match="cannot spare"):
        holdout(rows([sft("a", "q", "a")]), 0.5, seed=0)


def test_config_fields_are_validated(sample_out, tmp_path: Path):
    from trainer.config import ConfigError, TrainConfig

    out, _ = sample_out
    base = {"model": "m", "data": str(out), "output_dir": str(tmp_path)}
    cfg = TrainConfig.from_dict(base)
    assert (cfg.eval_metric, cfg.eval_samples, cfg.max_new_tokens, cfg.eval_strategy) == ("auto", 8, 128, "steps")
    for bad, match in (
        ({"eval_metric": "rouge"}, "eval_metric must be one of auto, wer, cer, exact_match, bleu"),
        ({"eval_strategy": "sometimes"}, "eval_strategy must be one of steps, epoch"),
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"eval_samples": -1}, "eval_samples must be >= 0"),
        ({"eval_generate_records": -2}, "eval_generate_records must be"),
        ({"eval_holdout": 1.0}, r"eval_holdout must be in \[0, 1\)"),
    ):
        with pytest.raises(ConfigError, match=match):
            TrainConfig.from_dict({**base, **bad})


# -- generation plumbing, with a scripted model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("trl")
    from trainer.tiny import make_tiny_model

    os.environ["HF_HUB_OFFLINE"] = "1"
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


@pytest.fixture(scope="module")
def with_val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus converted with a validation split (15 SFT and 2 DPO records)."""
    import audiodata
    from tests.conftest import SAMPLE

    out = tmp_path_factory.mktemp("val") / "ds"
    audiodata.convert([str(SAMPLE)], out, num_workers=1, val_ratio=0.3)
    return out


class Scripted:
    """Stands in for a model: ``generate`` answers each prompt with the next scripted reply, as transformers
    does (prompt + reply tokens, cut at ``max_new_tokens``, finished rows padded)."""

    training = False
    dtype = None
    generation_config = None

    def __init__(self, tokenizer: Any, replies: list[str]) -> None:
        import torch

        self.tok, self.replies, self.calls = tokenizer, list(replies), []
        self.device = torch.device("cpu")

    def eval(self) -> None:
        pass

    def train(self, mode: bool = True) -> None:
        pass

    def generate(self, input_ids: Any, attention_mask: Any, max_new_tokens: int, pad_token_id: int, **kw: Any) -> Any:
        import torch

        self.calls.append({"rows": input_ids.shape[0], "audio": "input_features" in kw, **kw})
        new = []
        for _ in range(input_ids.shape[0]):
            ids = self.tok(self.replies.pop(0), add_special_tokens=False)["input_ids"][:max_new_tokens]
            new.append(ids + [pad_token_id] * (max_new_tokens - len(ids)))
        return torch.cat([input_ids, torch.tensor(new, dtype=input_ids.dtype)], dim=1)


def evaluator_for(tiny: str, data: Path, out: Path, **kw: Any) -> Any:
    """An Evaluator on ``data``'s validation split for the tiny model's processor (no weights loaded)."""
    from trainer.collators import AudioCollator
    from trainer.config import TrainConfig
    from trainer.data import load_rows
    from trainer.evaluate import Evaluator
    from trainer.families import get_family
    from trainer.generation import Generator

    cfg = TrainConfig.from_dict({"model": tiny, "data": str(data), "output_dir": str(out), "eval_split": "validation", **kw})
    family = get_family("qwen2-audio")
    processor = family.load_processor(tiny)
    collator = AudioCollator(family, processor)
    gen = Generator(family, processor, collator, cfg.max_new_tokens, cfg.per_device_batch_size)
    return Evaluator(cfg, load_rows(cfg, "validation"), gen, "validation", None)


def test_stop_tokens_come_from_eos_and_the_templates_end_of_turn(tiny: str, with_val: Path, tmp_path: Path):
    ev = evaluator_for(tiny, with_val, tmp_path)
    assert ev.gen.stop_tokens() == ["<|im_end|>"]  # EOS is the end-of-turn token for Qwen2-Audio
    custom = tmp_path / "t.jinja"
    custom.write_text(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{% if c['type'] == 'text' %}"
        "{{ c['text'] }}{% else %}<|audio_bos|><|AUDIO|><|audio_eos|>{% endif %}{% endfor %}<|endoftext|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    ev.gen.processor.chat_template = custom.read_text()
    ev.gen.stop_ids = ev.gen._stop_ids()
    assert ev.gen.stop_tokens() == ["<|im_end|>", "<|endoftext|>"]  # a template that ends turns otherwise


def test_hypothesis_stops_at_the_stop_token_and_shows_a_leaked_template(tiny: str, with_val: Path, tmp_path: Path):
    ev = evaluator_for(tiny, with_val, tmp_path)
    tok = ev.gen.tok

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    good = ev.gen.hypothesis(ids("She sells sea shells.<|im_end|>\n<|im_start|>user\nmore"))
    assert (good.text, good.stopped, good.template_tokens) == ("She sells sea shells.", True, [])
    broken = ev.gen.hypothesis(ids("She sells<|im_start|>assistant\nShe sells"))  # no stop token, a role header
    assert not broken.stopped and broken.template_tokens == ["<|im_start|>"]
    assert broken.text == "She sells<|im_start|>assistant\nShe sells"
    wer_good = score("wer", ["She sells sea shells."], [good.text]).value
    wer_broken = score("wer", ["She sells"], [broken.text]).value
    assert wer_good == 0.0 and wer_broken == pytest.approx(5 / 2)  # 2 hits; im, start, assistant, she, sells inserted


def test_evaluator_scores_the_generated_replies_and_shows_a_broken_stop_token(tiny: str, with_val: Path, tmp_path: Path):
    from trainer.eval_page import render_eval_page
    from trainer.evaluate import read_log

    ev = evaluator_for(tiny, with_val, tmp_path, eval_samples=4, max_new_tokens=160, per_device_batch_size=4)
    n = len(ev.examples)
    assert n == 15 and ev.chosen == list(range(n)) and len(ev.samples) == 4 and ev.metric == "wer"
    refs = [ev.examples[k].reference for k in ev.chosen]
    # step 1: a model that runs on into the next turn (no stop token, a role header); step 2: right and stopped
    broken = ["<|im_start|>assistant\n" + f"{r} " * 12 for r in refs]  # longer than max_new_tokens
    right = [f"{r}<|im_end|>" for r in refs]
    lengths = [len(ev.gen.tok(x, add_special_tokens=False)["input_ids"]) for x in (*broken, *right)]
    assert min(lengths[:n]) > 160 >= max(lengths[n:])
    ev.start(None)
    model = Scripted(ev.gen.tok, broken + right)
    first = ev.run(model, 1, 0.5, 2.5)
    second = ev.run(model, 2, 1.0, 1.5)
    assert [c["rows"] for c in model.calls] == [4, 4, 4, 3] * 2 and all(c["audio"] for c in model.calls)
    assert all(c["eos_token_id"] == [ev.gen.tok.convert_tokens_to_ids("<|im_end|>")] for c in model.calls)
    hyps1 = [ev.gen.hypothesis(ev.gen.tok(b, add_special_tokens=False)["input_ids"][:160]).text for b in broken]
    assert first["value"] == pytest.approx(score("wer", refs, hyps1).value) and first["value"] > 0.5
    assert first["no_stop"] == first["template_tokens"] == first["scored"] == n and first["failed"] == 0
    assert second["value"] == 0.0 and second["no_stop"] == 0 and second["template_tokens"] == 0
    assert [e["step"] for e in read_log(ev.path)] == [1, 2]
    section = ev.section()
    assert [h["step"] for h in section["history"]] == [1, 2] and section["final"]["value"] == 0.0
    assert section["metric_reason"].startswith("auto: 12 of 15") and section["stop_tokens"] == ["<|im_end|>"]
    for s in section["samples"]:
        assert [h["step"] for h in s["hypotheses"]] == [1, 2]
        assert "<|im_start|>" in s["hypotheses"][0]["text"] and s["hypotheses"][0]["template_tokens"] == ["<|im_start|>"]
        assert s["hypotheses"][1]["text"] == s["reference"] and s["hypotheses"][1]["score"] == 0.0
    page = render_eval_page({"task": "sft", "evaluation": section}, None, ev.page_audio())
    assert page.count("<audio ") == sum(len(s["clip_seconds"]) for s in section["samples"]) > 0
    assert page.count('data-flagged="1"') == 4 and "template tokens: &lt;|im_start|&gt;" in page
    assert "replies ran to max_new_tokens without a stop token" not in page  # the last evaluation is clean
    # a resumed run keeps the log up to its checkpoint
    ev.start(1)
    assert [e["step"] for e in read_log(ev.path)] == [1]


def test_fixed_sample_audio_is_the_clip_as_flac(tiny: str, with_val: Path, tmp_path: Path):
    import soundfile as sf

    ev = evaluator_for(tiny, with_val, tmp_path, eval_samples=3)
    for s in ev.samples:
        assert len(s.audio) == len(s.seconds) == s.example.clips
        for (mime, data), seconds in zip(s.audio, s.seconds, strict=True):
            pcm, rate = sf.read(io.BytesIO(data))
            assert mime == "audio/flac" and rate == 16000 and len(pcm) / rate == pytest.approx(seconds, abs=0.01)


def test_ranks_share_the_records_once_with_equal_generate_calls(tiny: str, with_val: Path, tmp_path: Path, monkeypatch):
    """Each rank generates for its own share (the gather puts them together), every rank calls ``generate``
    equally often (ZeRO-3/FSDP need it) and the padding of a short share is dropped."""
    from trainer import dist
    from trainer.generation import Hypothesis

    ev = evaluator_for(tiny, with_val, tmp_path, per_device_batch_size=2, max_new_tokens=8)
    ev.chosen = ev.chosen[:7]
    shares, calls = [], []
    for rank in range(3):
        monkeypatch.setattr(dist, "world", lambda r=rank: (r, 3))
        model = Scripted(ev.gen.tok, ["hi<|im_end|>"] * 10)
        got = ev._generate_share(model)
        assert all(isinstance(h, Hypothesis) and h.text == "hi" for _, h in got)
        shares.append([k for k, _ in got])
        calls.append(len(model.calls))
    assert sorted(k for s in shares for k in s) == ev.chosen  # each record once
    assert shares == [ev.chosen[0::3], ev.chosen[1::3], ev.chosen[2::3]]
    assert calls == [2, 2, 2]  # 3, 2 and 2 records in batches of 2: the short shares pad their last batch


def test_a_record_that_cannot_be_encoded_is_counted_not_fatal(tiny: str, with_val: Path, tmp_path: Path):
    ev = evaluator_for(tiny, with_val, tmp_path, per_device_batch_size=4, max_new_tokens=8)
    bad = ev.chosen[1]

    def encode(example: Any, row: dict[str, Any], real: Any = ev.gen.encode) -> Any:
        if example.row == ev.examples[bad].row:
            raise ValueError("cannot decode clip.flac")
        return real(example, row)

    ev.gen.encode = encode
    ev.start(None)
    line = ev.run(Scripted(ev.gen.tok, ["x<|im_end|>"] * 20), 1, None, None)
    assert line["failed"] == 1 and line["scored"] == len(ev.chosen) - 1


# -- the trainer end to end (slow: tiny-model training) --------------------------------------------------------------


@pytest.mark.slow
def test_sft_generates_at_every_evaluation_and_at_the_end(tiny: str, with_val: Path, tmp_path: Path):
    from trainer.config import TrainConfig
    from trainer.train import train

    out = tmp_path / "run"
    cfg = TrainConfig.from_dict({
        "model": tiny, "data": str(with_val), "output_dir": str(out), "eval_split": "validation", "max_steps": 3,
        "eval_steps": 2, "logging_steps": 1, "save_steps": 1000, "per_device_batch_size": 4, "max_new_tokens": 6,
        "eval_samples": 15, "eval_generate_records": -1, "learning_rate": 1e-3,
    })  # fmt: skip
    report = train(cfg)
    ev = report["evaluation"]
    assert [h["step"] for h in ev["history"]] == [2, 3]  # the schedule's evaluation and the final one
    assert [h["step"] for h in report["eval_history"]] == [2, 3]
    assert ev["metric"] == "wer" and ev["generated_per_eval"] == 15 and len(ev["samples"]) == 15
    for k, h in enumerate(ev["history"]):
        assert h["eval_loss"] == report["eval_history"][k]["eval_loss"]
        refs = [s["reference"] for s in ev["samples"]]
        hyps = [s["hypotheses"][k]["text"] for s in ev["samples"]]
        assert h["scored"] == 15 and h["value"] == pytest.approx(score("wer", refs, hyps).value)
    saved = json.loads((out / "train_report.json").read_text())
    assert saved["evaluation"]["history"] == ev["history"]
    page = (out / "eval.html").read_text()
    assert page.count('<article class="sample"') == 15 and page.count("<audio ") == 16  # one record has two clips
    assert "data:image/png;base64," in page and "Training in progress" not in page
    assert len((out / "evaluation.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_dpo_holds_out_records_and_scores_against_the_chosen_reply(tiny: str, with_val: Path, tmp_path: Path):
    from trainer.config import TrainConfig
    from trainer.train import train

    cfg = TrainConfig.from_dict({
        "model": tiny, "data": str(with_val), "output_dir": str(tmp_path / "dpo"), "task": "dpo", "max_steps": 2,
        "per_device_batch_size": 2, "eval_holdout": 0.3, "max_new_tokens": 4, "eval_metric": "bleu", "save_steps": 1000,
    })  # fmt: skip
    report = train(cfg)
    ev = report["evaluation"]
    assert ev["split"].startswith("held out: 3 of the train records") and ev["records"] == 3
    assert report["train_records"] == 11 - 3 and ev["metric"] == "bleu" and not ev["lower_is_better"]
    assert [h["step"] for h in ev["history"]] == [2] and ev["history"][0]["scored"] == 3
    held = {s["id"] for s in ev["samples"]}
    assert held and all(s["reference"] for s in ev["samples"])
    log = [json.loads(line) for line in (tmp_path / "dpo" / "batches.jsonl").read_text().splitlines()]
    assert held.isdisjoint({i for e in log for i in e["ids"]})  # held-out records are never trained on


@pytest.mark.slow
def test_two_processes_score_each_eval_record_once(tiny: str, with_val: Path, tmp_path: Path):
    from tests.training.test_distributed import torchrun

    flags = {
        "model": tiny, "data": with_val, "output_dir": tmp_path / "two", "eval_split": "validation", "max_steps": 2,
        "per_device_batch_size": 2, "max_new_tokens": 4, "eval_samples": 15, "eval_generate_records": -1,
        "save_steps": 1000, "logging_steps": 1,
    }  # fmt: skip
    report = torchrun("sft", flags)
    ev = report["evaluation"]
    assert report["processes"] == 2 and [h["step"] for h in ev["history"]] == [2]
    (h,) = ev["history"]
    assert h["scored"] == 15 and len({s["key"] for s in ev["samples"]}) == 15
    assert all(len(s["hypotheses"]) == 1 for s in ev["samples"])
    refs = [s["reference"] for s in ev["samples"]]
    hyps = [s["hypotheses"][0]["text"] for s in ev["samples"]]
    assert h["value"] == pytest.approx(score("wer", refs, hyps).value)  # gathered: every record once, none twice
    assert len((tmp_path / "two" / "evaluation.jsonl").read_text().splitlines()) == 1  # rank 0 alone writes
