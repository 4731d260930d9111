"""``rl.html`` (trainer/rl_page.py): well-formed, self-contained, escaped, every curve and fixed prompt there; in headless
Chromium the players play and the evaluation page's filter filters it too; a screenshot to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.report.test_report_html import CHROMIUM, Page, script_errors
from tests.training.test_eval_page import attr, flac, png, run_chromium
from trainer.rl_page import eval_history, history, render_rl_page

CHOICES = ["a man", "a woman", "a child", "nobody"]


def done(step: int, text: str, reward: float | None, stopped: bool = True, **per: float | None) -> dict[str, Any]:
    return {"step": step, "text": text, "stopped": stopped, "template_tokens": [], "reward": reward, "rewards": per}


def log_line(step: int, reward: float, kl: float) -> dict[str, Any]:
    """One training log line as TRL's GRPOTrainer writes it into ``state.log_history``."""
    return {
        "step": step, "loss": 0.01 * step, "reward": reward, "reward_std": 0.3, "rewards/mcq_letter/mean": reward,
        "rewards/mcq_letter/std": 0.3, "rewards/format/mean": 0.0, "kl": kl, "entropy": 3.1,
        "completions/mean_length": 12.0 + step, "completions/min_length": 3.0, "completions/max_length": 16.0,
        "completions/clipped_ratio": 0.5, "frac_reward_zero_std": 0.25, "learning_rate": 0.01,
    }  # fmt: skip


def report(**kw: Any) -> dict[str, Any]:
    samples = [
        {"key": 0, "id": "mcq-0", "prompt": "<audio>Who is speaking?", "answer": "a woman", "choices": CHOICES, "task": "mcq",
         "clip_seconds": [1.5], "completions": [done(0, "C", 0.0, mcq_letter=0.0, format=0.0),
                                                done(4, "B", 1.0, mcq_letter=1.0, format=0.0)]},
        {"key": 2, "id": "asr-2", "prompt": "<audio>Transcribe.", "answer": "The quick brown fox.", "choices": None,
         "task": "asr", "clip_seconds": [0.8], "completions": [done(0, "the quick fox", 0.0, False, mcq_letter=None),
                                                                 done(4, "the quick fox", 0.0, mcq_letter=None)]},
        {"key": 5, "id": "qa-5", "prompt": "What is two and two?", "answer": "four", "choices": None, "task": "qa",
         "clip_seconds": [], "completions": [done(0, "", 0.0), done(4, "four", 1.0)]},
    ]  # fmt: skip
    logs = [log_line(s, r, k) for s, r, k in ((1, 0.05, 0.0), (2, 0.3, 0.01), (3, 0.6, 0.02), (4, 0.9, 0.03))]
    base = {
        "task": "grpo", "family": "qwen2-audio", "model": "out/tiny", "data": "out/rl", "steps": 4,
        "rewards": {"functions": ["mcq_letter", "format"], "weights": [1.0, 0.5]}, "rl_history": history(logs),
        "reward_first": 0.05, "reward_last": 0.9, "train_records": 7, "repeated_prompts_per_epoch": 1,
        "skipped": {"records": 0}, "samples": samples,
        "config": {"num_generations": 4, "temperature": 1.0, "beta": 0.04},
    }  # fmt: skip
    return {**base, **kw}


AUDIO = {0: [("audio/flac", flac(1.5))], 2: [("audio/flac", flac(0.8, 330))]}


def test_history_keeps_trls_grpo_metrics_per_log_line():
    hist = history([log_line(1, 0.5, 0.01), {"step": 1, "train_runtime": 3.0}])
    assert hist == [
        {"step": 1, "reward": 0.5, "reward_std": 0.3, "kl": 0.01, "entropy": 3.1, "completion_mean_length": 13.0,
         "completion_min_length": 3.0, "completion_max_length": 16.0, "clipped_ratio": 0.5, "frac_reward_zero_std": 0.25,
         "loss": 0.01, "rewards": {"mcq_letter": 0.5, "format": 0.0}}
    ]  # fmt: skip


def test_page_is_well_formed_self_contained_and_complete():
    page = render_rl_page(report(), png(), AUDIO)
    parsed = Page(page)
    assert parsed.problems == [] and parsed.stack == []
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    assert parsed.count("link") == 0 and all("src" not in a for a in parsed.tags("script"))
    assert [a["src"][:22] for a in parsed.tags("img")] == ["data:image/png;base64,"]
    audios = parsed.tags("audio")
    assert len(audios) == 2 and all(a["src"].startswith("data:audio/flac;base64,") for a in audios)
    # charts: mean reward, mcq_letter, format, KL, mean length, clipped share: 4 points each
    assert page.count('<svg class="chart"') == 6 and page.count('<circle class="pt"') == 24
    rewards = page.split('id="rewards"')[1].split("</section>")[0]
    assert rewards.count("<tr>") == 5 and "0.900" in rewards  # header + 4 log lines
    assert parsed.count("article") == 3 and page.count('<tr class="hyp"') == 6
    assert "B. a woman" in page and "A. a man · B. a woman" in page  # the mcq answer as its letter and text
    assert "the quick <del>brown</del> fox" in page  # a free answer diffed against the reference
    assert "reward 1.00</b><br>mcq_letter 1.00<br>format 0.00" in page and "mcq_letter –" in page
    assert "0.050</b><span>mean reward, first log" in page and "0.900</b><span>mean reward, last log" in page
    assert "mcq_letter ×1, format ×0.5" in page and "beta 0.04" in page
    assert page.count("(unchanged)") == 1 and '<span class="empty">(empty)</span>' in page


def eval_line(step: int, reward: float) -> dict[str, Any]:
    """One evaluation as TRL's GRPOTrainer logs it on held-out prompts: its metrics with the ``eval_`` prefix."""
    return {
        "step": step, "eval_loss": 0.02, "eval_reward": reward, "eval_reward_std": 0.2, "eval_rewards/mcq_letter/mean": reward,
        "eval_rewards/format/mean": 0.5, "eval_completions/mean_length": 9.0, "eval_runtime": 1.0, "epoch": 0.5,
    }  # fmt: skip


def test_held_out_rewards_are_charted_apart_from_training():
    logs = [log_line(2, 0.3, 0.01), eval_line(2, 0.25), log_line(4, 0.9, 0.03), eval_line(4, 0.75)]
    held = eval_history(logs)
    assert [h["step"] for h in held] == [2, 4] and held[1]["rewards"] == {"mcq_letter": 0.75, "format": 0.5}
    assert held[1]["reward"] == 0.75 and held[1]["loss"] == 0.02 and held[1]["completion_mean_length"] == 9.0
    assert [h["step"] for h in history(logs)] == [2, 4]  # training's own history never takes an evaluation
    ev = {"records": 3, "source": "eval split 'validation'", "history": held}
    page = render_rl_page(report(evaluation=ev), None, {})
    section = page.split('id="evaluation"')[1].split("</section>")[0]
    assert "3 held-out prompts (eval split &#x27;validation&#x27;)" in section and section.count('<circle class="pt"') == 2
    assert section.count("<tr>") == 3 and "0.750" in section and Page(page).problems == []
    assert 'id="evaluation"' not in render_rl_page(report(), None, {})  # no eval set: no section
    empty = render_rl_page(report(evaluation={**ev, "history": []}), None, {})
    assert "No evaluation logged yet." in empty


def test_header_calls_out_a_run_with_nothing_to_learn_from_and_a_run_without_kl():
    logs = [log_line(1, 0.0, 0.0) | {"frac_reward_zero_std": 1.0}]
    page = render_rl_page(report(rl_history=history(logs), config={"beta": 0}), None, {})
    assert "every group&#x27;s completions got the same reward (mean 0.000)" in page
    assert "beta is 0: no reference model, so no KL is computed." in page
    assert "No loss curve yet." in page
    empty = render_rl_page(report(rl_history=[], samples=[]), None, {})
    assert "No training step logged yet." in empty and "No fixed prompts" in empty and Page(empty).problems == []


def test_untrusted_text_is_escaped():
    evil = "<script>alert(1)</script>"
    sample = {"key": 1, "id": evil, "prompt": evil, "answer": evil, "choices": [evil], "task": evil, "clip_seconds": [],
              "completions": [done(0, evil, 1.0)]}  # fmt: skip
    page = render_rl_page(report(samples=[sample], model=evil, rewards={"functions": [evil], "weights": [1.0]}), None, {})
    assert "<script>alert" not in page and page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6
    assert Page(page).problems == []


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_page_plays_and_filters_in_a_real_browser(tmp_path: Path):
    dom = run_chromium(render_rl_page(report(), png(), AUDIO), tmp_path, "--virtual-time-budget=10000", "--dump-dom").stdout
    assert script_errors(dom) is None
    players = (attr(dom, "data-audio") or "").split(",")
    assert [float(p.split(":")[1]) for p in players] == pytest.approx([1.5, 0.8], abs=0.02)
    # all: 6 rows in 3 prompts; step 4: 3; only changed: 5 (asr-2's step 4 is unchanged); only flagged: asr-2's
    # step 0 (no stop token); then all again
    assert attr(dom, "data-filter") == "6/3,3/3,5/3,1/1,6/3"


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_page_screenshot(tmp_path: Path):
    """A screenshot to look at (kept in the test's tmp folder): it must at least be a real, non-blank PNG."""
    from PIL import Image

    shot = tmp_path / "rl.png"
    ev = {"records": 3, "source": "eval split 'validation'", "history": eval_history([eval_line(2, 0.25), eval_line(4, 0.75)])}
    page = render_rl_page(report(evaluation=ev), png(), AUDIO)  # with the held-out section
    run_chromium(page, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}")
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2400)
    assert len(img.resize((64, 120)).getcolors(64 * 120) or []) > 20


def test_cli_summary_shows_the_held_out_reward_and_the_hearing():
    from trainer.cli import _grpo_rows

    ev = {"records": 3, "source": "eval split 'validation'", "history": eval_history([eval_line(2, 0.25), eval_line(4, 0.75)])}
    heard = {"before": {"kl_zeroed": 0.5}, "after": {"kl_zeroed": 0.0001}, "heard_after_training": False}
    base = {"runtime_s": 1.0, "config": {"output_dir": "o"}}
    rows = dict(_grpo_rows(report(evaluation=ev, audio_conditioning=heard, **base)))
    assert rows["held-out mean reward (3 prompts)"] == "0.250 -> 0.750"
    assert rows["audio KL real vs zeroed (before -> after)"] == "0.5 -> 0.0001 (deaf)"
    assert "held-out mean reward (3 prompts)" not in dict(_grpo_rows(report(**base)))
