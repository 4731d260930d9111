"""``eval.html``: well-formed, self-contained, escaped; in headless Chromium the players play, the filter filters."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tone
from tests.report.test_report_html import CHROMIUM, ERROR_HOOK, Page, script_errors
from trainer.eval_page import diff_html, render_eval_page


def flac(seconds: float, freq: float = 440.0) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(seconds, 16000, freq), 16000, format="FLAC")
    return buf.getvalue()


def png() -> bytes:
    import tempfile

    from trainer.report import plot_loss

    report = {
        "task": "sft",
        "family": "qwen2-audio",
        "steps": 4,
        "loss_history": [{"step": i, "loss": 3.0 - i / 2} for i in range(1, 5)],
    }
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "curve.png"
        plot_loss(report, path)
        return path.read_bytes()


def hyp(step: int, text: str, score: float, stopped: bool = True, tokens: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    return {"step": step, "text": text, "score": score, "stopped": stopped, "template_tokens": tokens or [], "error": None, **kw}


def report(samples: list[dict[str, Any]] | None = None, **ev: Any) -> dict[str, Any]:
    history = [
        {"step": 2, "epoch": 0.5, "eval_loss": 2.1, "value": 0.8, "scored": 15, "unscored": 0, "failed": 0, "no_stop": 9,
         "template_tokens": 3, "seconds": 4.2},
        {"step": 4, "epoch": 1.0, "eval_loss": 1.4, "value": 0.35, "scored": 15, "unscored": 0, "failed": 0, "no_stop": 0,
         "template_tokens": 0, "seconds": 3.9},
    ]  # fmt: skip
    if samples is None:
        samples = [
            {"key": 0, "id": "rec-0", "row": 0, "prompt": "<audio>What does the speaker say?",
             "reference": "She sells sea shells.", "clip_seconds": [1.5],
             "hypotheses": [hyp(2, "She sells<|im_start|>assistant", 1.0, False, ["<|im_start|>"]),
                            hyp(4, "She sells sea shells.", 0.0)]},
            {"key": 3, "id": "rec-3", "row": 3, "prompt": "<audio>Transcribe.", "reference": "What time is it?",
             "clip_seconds": [0.8, 1.2], "hypotheses": [hyp(2, "What time is it", 0.0), hyp(4, "What time is it", 0.0)]},
            {"key": 5, "id": "rec-5", "row": 5, "prompt": "<audio>", "reference": "Turn left.",
             "clip_seconds": [2.0], "hypotheses": [hyp(2, "", 1.0), hyp(4, "Turn right.", 0.5)]},
        ]  # fmt: skip
    section = {
        "split": "validation", "metric": "wer", "metric_reason": "auto: 12 of 15 eval prompts ask for a transcript",
        "lower_is_better": True, "generated_per_eval": 15, "max_new_tokens": 32, "stop_tokens": ["<|im_end|>"],
        "history": history, "final": history[-1], "samples": samples, **ev,
    }  # fmt: skip
    return {"task": "sft", "family": "qwen2-audio", "model": "out/tiny", "steps": 4, "evaluation": section}


AUDIO = {
    0: [("audio/flac", flac(1.5))],
    3: [("audio/flac", flac(0.8, 330)), ("audio/flac", flac(1.2, 550))],
    5: [("audio/flac", flac(2.0))],
}


def test_page_is_well_formed_self_contained_and_complete():
    page = render_eval_page(report(), png(), AUDIO)
    parsed = Page(page)
    assert parsed.problems == [] and parsed.stack == []
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    assert parsed.count("link") == 0 and all("src" not in a for a in parsed.tags("script"))
    assert [a["src"][:22] for a in parsed.tags("img")] == ["data:image/png;base64,"]
    audios = parsed.tags("audio")
    assert len(audios) == 4 and all(a["src"].startswith("data:audio/flac;base64,") and "controls" in a for a in audios)
    assert parsed.count("article") == 3 and page.count('<tr class="hyp"') == 6
    metric_rows = page.split('id="metric"')[1].split("</section>")[0]
    assert metric_rows.count("<tr>") == 3 and "0.3500" in metric_rows and "0.8000" in metric_rows  # header + 2 steps
    assert page.count('<circle class="pt"') == 2  # the metric chart: one point per evaluation
    assert "She sells sea shells." in page and "Turn <del>left.</del> <ins>right.</ins>" in page
    assert 'data-step="2" data-changed="1" data-flagged="1"' in page  # the leaked template, flagged
    assert "template tokens: &lt;|im_start|&gt;" in page and "no stop token" in page
    assert page.count("(unchanged)") == 1 and '<span class="empty">(empty)</span>' in page
    assert "0.3500</b><span>WER at step 4" in page and "lower is better" in page


def test_last_evaluation_problems_are_called_out_in_the_header():
    rep = report()
    rep["evaluation"]["history"][-1].update(no_stop=4, template_tokens=2, failed=1)
    page = render_eval_page(rep, None, {})
    assert "4 of 15 replies ran to max_new_tokens without a stop token" in page
    assert "2 of 15 replies hold template tokens" in page and "1 records could not be generated" in page
    assert "No loss curve yet." in page and "<audio" not in page
    clean = render_eval_page(report(), None, {})
    assert 'class="alert"' not in clean  # the last evaluation had no problem (the first one's are in the table)


def evil_page(evil: str, mime: str = "audio/flac") -> str:
    samples = [{"key": 0, "id": evil + "id", "row": 0, "prompt": evil, "reference": evil, "clip_seconds": [1.0],
                "hypotheses": [hyp(2, evil + " x", 1.0, False, ["<|im_start|>"])]}]  # fmt: skip
    rep = report(samples, metric_reason=evil, split=evil)
    rep["model"] = evil
    return render_eval_page(rep, None, {0: [(mime, b"x"), ("audio/flac", b"ok")]})


def test_untrusted_text_is_escaped():
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(1)><b>'
    page = evil_page(evil, mime='audio/flac"><script>')
    parsed, plain = Page(page), Page(evil_page("plain"))
    assert parsed.problems == [] and [t for t, _ in parsed.starts] != []
    assert [t for t, _ in parsed.starts if t != "audio"] == [
        t for t, _ in plain.starts if t != "audio"
    ]  # the data added no element
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not [n for _, attrs in parsed.starts for n in attrs if n.startswith("on")]
    assert len(parsed.tags("audio")) == 1 and len(plain.tags("audio")) == 2  # a malformed mime type is not embedded


def test_no_evaluation_yet_reads_as_such():
    rep = report([])
    rep["evaluation"]["history"] = []
    page = render_eval_page(rep, None, {})
    assert Page(page).problems == [] and "No evaluation yet." in page and "No fixed samples" in page


def test_diff_marks_the_words_that_differ_compared_normalised():
    assert diff_html("the cat sat", "The cat sat!") == "The cat sat!"
    assert diff_html("the cat sat", "the dog sat down") == "the <del>cat</del> <ins>dog</ins> sat <ins>down</ins>"
    assert diff_html("a b c", "a c") == "a <del>b</del> c"
    assert diff_html("x", "<b>") == "<del>x</del> <ins>&lt;b&gt;</ins>"
    glued = "She sells <ins>&lt;|im_start|&gt; assistant</ins>"
    assert diff_html("She sells", "She sells<|im_start|>assistant") == glued


# -- in a real browser -----------------------------------------------------------------------------------------------

#: After load: each player's readyState and duration once its metadata loaded (or "error"), then the filter
#: exercised (one step; only changed; only flagged) with the visible hypotheses and samples counted each time.
PROBE = """<script>
window.addEventListener('load', function () {
  var h = document.documentElement, players = document.querySelectorAll('audio'), left = players.length, got = [];
  function visible() {
    var rows = 0, cards = 0;
    document.querySelectorAll('tr.hyp').forEach(function (r) { if (!r.hidden && r.offsetParent !== null) rows++; });
    document.querySelectorAll('article.sample').forEach(function (a) { if (!a.hidden) cards++; });
    return rows + '/' + cards;
  }
  function filters() {
    var sel = document.querySelector('.filter select'), ch = document.getElementById('only-changed'),
        fl = document.getElementById('only-flagged'), out = [visible()];
    sel.value = '4'; sel.dispatchEvent(new Event('change')); out.push(visible());
    sel.value = 'all'; ch.checked = true; ch.dispatchEvent(new Event('change')); out.push(visible());
    ch.checked = false; fl.checked = true; fl.dispatchEvent(new Event('change')); out.push(visible());
    fl.checked = false; fl.dispatchEvent(new Event('change')); out.push(visible());
    h.setAttribute('data-filter', out.join(','));
    h.setAttribute('data-count', document.querySelector('.filter .count').textContent);
  }
  function done() { h.setAttribute('data-audio', got.join(',')); filters(); }
  players.forEach(function (a, i) {
    function ok() { got[i] = a.readyState + ':' + a.duration.toFixed(2); if (--left === 0) done(); }
    if (a.readyState >= 1) { ok(); return; }
    a.addEventListener('loadedmetadata', ok);
    a.addEventListener('error', function () { got[i] = 'error'; if (--left === 0) done(); });
    a.load();
  });
  if (!players.length) done();
});
</script>"""


def run_chromium(page: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "eval.html"
    path.write_text(page.replace("<head>", "<head>" + ERROR_HOOK + PROBE, 1), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *extra, path.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def attr(dom: str, name: str) -> str | None:
    m = re.search(rf'<html[^>]*\s{name}="([^"]*)"', dom)
    return m.group(1) if m else None


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_page_plays_and_filters_in_a_real_browser(tmp_path: Path):
    page = render_eval_page(report(), png(), AUDIO)
    dom = run_chromium(page, tmp_path, "--virtual-time-budget=10000", "--dump-dom").stdout
    assert script_errors(dom) is None
    players = (attr(dom, "data-audio") or "").split(",")
    assert [p.split(":")[0] for p in players] != [] and all(p != "error" for p in players), players
    assert [float(p.split(":")[1]) for p in players] == pytest.approx([1.5, 0.8, 1.2, 2.0], abs=0.02)
    assert all(int(p.split(":")[0]) >= 1 for p in players)  # HAVE_METADATA or better: a playable source
    # all 6 rows in 3 samples; step 4: 3 rows; only changed: 5 rows (the second step of rec-3 is unchanged) in 3
    # samples; only flagged: rec-0's step 2 (template tokens, no stop) and rec-5's (empty, stopped: not flagged)
    assert attr(dom, "data-filter") == "6/3,3/3,5/3,1/1,6/3"
    assert attr(dom, "data-count") == "6 of 6 hypotheses shown"
    broken = run_chromium(page.replace("</body>", "<script>undefinedFunction();</script></body>"), tmp_path, "--dump-dom")
    assert "undefinedFunction" in (script_errors(broken.stdout) or "")  # the hook does catch errors


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_page_screenshot(tmp_path: Path):
    """A screenshot to look at (kept in the test's tmp folder): it must at least be a real, non-blank PNG."""
    from PIL import Image

    shot = tmp_path / "eval.png"
    run_chromium(render_eval_page(report(), png(), AUDIO), tmp_path, "--window-size=1280,2000", f"--screenshot={shot}")
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2000)
    colours = img.resize((64, 100)).getcolors(64 * 100) or []
    assert len(colours) > 20  # header, curve, chart, players, highlights: not a blank page
