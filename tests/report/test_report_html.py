"""The HTML lint report: one self-contained, well-formed page that escapes everything from the data."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from audiodata.report.html import MAX_RECORDS, render_html
from audiodata.rules.registry import REGISTRY

VOID = {"meta", "input", "br", "img", "hr", "link", "source", "wbr"}
BAR = re.compile(r'<g><title>([^<]*)</title><rect class="([^"]*)"')


class Page(HTMLParser):
    """Collects tags and attributes and checks that every non-void element is closed in order."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.starts: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.starts if t == name]

    def count(self, name: str) -> int:
        return len(self.tags(name))


def finding(code: str, index: int | None, *, source: str | None = "data/a.jsonl", message: str = "bad", **kw: Any) -> dict:
    sev = REGISTRY[code].severity.value if code in REGISTRY else kw.pop("severity", "warning")
    line = None if index is None else index + 1
    loc = {"source": source, "index": index, "line": kw.get("line", line)}
    return {"code": code, "severity": sev, **loc, "field": kw.get("field", ""), "message": message}


def report(findings: list[dict], records: int = 10) -> dict:
    by_code: dict[str, int] = {}
    for f in findings:
        by_code[f["code"]] = by_code.get(f["code"], 0) + 1
    errors = sum(f["severity"] == "error" for f in findings)
    flagged = {(f["source"], f["index"]) for f in findings if f["severity"] == "error"}
    warnings = sum(f["severity"] == "warning" for f in findings)
    summary = {"records": records, "records_with_errors": len(flagged), "errors": errors, "warnings": warnings, "infos": 0}
    summary |= {"by_code": by_code, "inputs": ["data/a.jsonl", "data/b.jsonl"]}
    return {"version": 1, "summary": summary, "findings": findings}


def extras(durations: list[float] | None = None, **kw: Any) -> dict:
    out = {
        "durations": [1.0, 2.5, 4.0, 7.5, 12.0] if durations is None else durations,
        "sample_rates": {"16000": 4, "8000": 1},
        "previews": {},
        "model_window": 30.0,
        "audio_checked": True,
    }
    out.update(kw)
    return out


def bars(page: str, chart: int) -> list[tuple[str, str]]:
    """(hover text, class) of every bar of the n-th chart on the page."""
    return BAR.findall(page.split("<svg")[chart + 1].split("</svg>")[0])


def bar_count(tip: str) -> int:
    return int(re.search(r": ([\d,]+) clips?", tip).group(1).replace(",", ""))


def records(page: str) -> list[str]:
    """The markup of each flagged-record entry."""
    return page.split('<li class="rec ')[1:]


def test_page_is_well_formed_and_self_contained():
    fs = [finding("M001", 0, field="conversations[2].value"), finding("A009", 0), finding("S004", 3)]
    ex = extras(previews={"data/a.jsonl#0": {"mime": "audio/mpeg", "data": "SUQzBAAA", "field": "audios[0]", "seconds": 9.5}})
    page = render_html(report(fs), ex)
    parsed = Page(page)
    assert parsed.problems == [] and parsed.stack == []
    for tag in ("html", "head", "body", "header", "main", "footer", "table", "style"):
        assert parsed.count(tag) == 1, tag
    assert parsed.count("section") == 4  # durations, rates, rules, records
    assert page.count("<style") == 1 and page.startswith("<!DOCTYPE html>")
    assert parsed.count("link") == 0 and all("src" not in a for a in parsed.tags("script"))
    for _, attrs in parsed.starts:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.lower().startswith(("http:", "https:", "//")), value
    assert "http://" not in page and "https://" not in page
    assert "<title>audiodata lint report</title>" in page


def test_header_shows_inputs_numbers_and_verdict():
    fs = [finding("M001", 0), finding("M001", 1), finding("A009", 2), finding("S004", 1)]
    page = render_html(report(fs, records=42), extras(), title="corpus v2")
    assert "<h1>corpus v2</h1>" in page and "data/b.jsonl" in page
    assert "3 errors would fail or degrade training" in page and "2 records affected" in page
    assert "<b>42</b><span>records</span>" in page and "<b>1</b><span>warnings</span>" in page
    assert "Ready to train" not in page


def test_duration_histogram_marks_short_and_over_window_clips():
    durations = [0.05, 0.5, 3.0, 3.2, 8.0, 15.0, 29.0, 31.0, 40.0]
    page = render_html(report([]), extras(durations))
    assert page.count("<svg") == 2
    dur = bars(page, 0)
    assert 3 <= len(dur) <= 30
    assert sum(bar_count(t) for t, _ in dur) == len(durations)
    first_tip, first_cls = dur[0]
    assert first_tip.startswith("0–0.1 s: 1 clip") and first_cls == "bar bad"
    over = [(t, c) for t, c in dur if c == "bar warn"]
    assert over and over[0][0].startswith("30–")  # the window is a bin edge: no bar straddles it
    assert sum(bar_count(t) for t, _ in over) == 2
    assert all(c == "bar" for t, c in dur[1:] if float(t.split("–")[0]) < 30)
    assert 'class="marker"' in page and "model window 30 s" in page
    for label in ("min", "median", "max", "total"):
        assert f"<span>{label} <b>" in page
    assert "<span>median <b>8.00 s</b></span>" in page


def test_long_tail_goes_into_one_overflow_bar():
    rng = random.Random(1)
    durations = [rng.uniform(1, 12) for _ in range(5000)] + [3600.0]
    page = render_html(report([]), extras(durations))
    dur = bars(page, 0)
    assert len(dur) <= 30 and sum(bar_count(t) for t, _ in dur) == len(durations)
    last_tip, last_cls = dur[-1]
    assert last_tip.startswith("over ") and "3600 s" in last_tip and bar_count(last_tip) == 1 and last_cls == "bar warn"
    assert bar_count(dur[1][0]) > 0  # the bulk is spread over bars, not squashed into the first one


def test_no_window_marker_when_every_clip_fits_far_below_it():
    page = render_html(report([]), extras([1.0, 2.0, 3.0], model_window=600.0))
    assert 'class="marker"' not in page and "Every clip fits the 600 s model window" in page
    page = render_html(report([]), extras([1.0, 2.0, 3.0], model_window=None))
    assert 'class="marker"' not in page and all(c != "bar warn" for _, c in bars(page, 0))


def test_sample_rate_histogram_is_ascending_and_flags_low_rates():
    ex = extras(sample_rates={"44100": 3, "8000": 2, "16000": 10, "22050": 1, "11025": 0})
    page = render_html(report([]), ex)
    rates = bars(page, 1)
    assert [t.split(" Hz")[0] for t, _ in rates] == ["8,000", "16,000", "22,050", "44,100"]
    assert [c for _, c in rates] == ["bar warn", "bar", "bar", "bar"]
    assert [bar_count(t) for t, _ in rates] == [2, 10, 1, 3]


def evil_page(source: str, message: str, field: str, code: str, severity: str, title: str) -> str:
    fs = [finding("M001", 0, source=source, message=message, field=field), finding(code, 1, severity=severity, message=message)]
    rep = report(fs)
    rep["summary"]["inputs"] = [source]
    return render_html(rep, extras(previews={f"{source}#0": {"data": "SUQz", "field": field}}), title=title)


def test_untrusted_text_is_escaped_everywhere():
    page = evil_page(
        'x"><b>.jsonl', "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "<i>Z9", "<u>bad", "<svg onload=alert(3)>"
    )
    plain = evil_page("x.jsonl", "hello", "audios[0]", "Z9", "bad", "title")
    parsed = Page(page)
    assert [t for t, _ in parsed.starts] == [t for t, _ in Page(plain).starts]  # the data added no element
    assert parsed.problems == []
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert parsed.count("script") == 1 and parsed.count("img") == 0 and parsed.count("u") == 0
    assert not [n for _, attrs in parsed.starts for n in attrs if n.startswith("on")]
    assert "<i>Z9" not in page and "&lt;i&gt;Z9" in page and "x&quot;&gt;&lt;b&gt;.jsonl" in page
    assert "unknown rule" in page
    assert "&amp;amp; stays text" in render_html(report([finding("M001", 0, message="&amp; stays text")]), extras())
    assert "<svg onload" not in page and "<title>&lt;svg onload=alert(3)&gt;</title>" in page


def test_preview_adds_an_inline_audio_player_only_where_given():
    fs = [finding("A007", 0), finding("A007", 1)]
    preview = {"mime": "audio/mpeg", "data": "SUQz\nBAAA==", "field": "audios[1]", "seconds": 9.5}
    page = render_html(report(fs), extras(previews={"data/a.jsonl#0": preview}))
    audios = Page(page).tags("audio")
    assert len(audios) == 1
    assert audios[0]["src"] == "data:audio/mpeg;base64,SUQzBAAA=="
    assert "controls" in audios[0] and audios[0]["preload"] == "none"
    first, second = records(page)
    assert "<audio" in first and "audios[1] · 9.5 s" in first
    assert "<audio" not in second


def test_malformed_previews_are_dropped_not_rendered():
    fs = [finding("A007", 0), finding("A007", 1), finding("A007", 2)]
    previews = {
        "data/a.jsonl#0": {"mime": 'audio/mpeg"><script>', "data": "SUQz"},
        "data/a.jsonl#1": {"mime": "audio/wav", "data": "not base64 <b>!"},
        "data/a.jsonl#2": "just a string",
    }
    page = render_html(report(fs), extras(previews=previews))
    assert "<audio" not in page and len(records(page)) == 3


def test_empty_report_is_ready_to_train():
    page = render_html(
        {"version": 1, "summary": {}, "findings": []},
        {"durations": [], "sample_rates": {}, "previews": {}, "model_window": None, "audio_checked": True},
    )
    assert Page(page).problems == []
    assert "Ready to train" in page and "<svg" not in page
    assert "No clips were decoded" in page and "No rule fired" in page and "No record has a finding" in page
    assert "Ready to train" in render_html({}, {})  # missing keys are zeros, not crashes


def test_warnings_alone_still_ready_to_train():
    page = render_html(report([finding("A009", 0), finding("A009", 1)]), extras())
    assert "Ready to train · 2 warnings worth a look" in page


def test_audio_not_checked_says_so_instead_of_empty_charts():
    page = render_html(report([finding("M001", 0)]), extras([], sample_rates={}, audio_checked=False))
    assert "Audio was not checked" in page and "<svg" not in page and 'href="#durations"' not in page


def test_flagged_records_grouped_in_input_order():
    fs = [
        finding("M001", 2, message="first of two"),
        finding("A009", 0, source="data/b.jsonl", line=None, message="no line"),
        finding("S004", 2, field="conversations[1].value", message="second of two"),
        finding("F004", None, source="data/c.jsonl", message="cannot read"),
    ]
    page = render_html(report(fs), extras())
    entries = records(page)
    assert len(entries) == 3 == len({(f["source"], f["index"]) for f in fs})
    assert entries[0].startswith('error"><div class="loc">data/a.jsonl:3 ')
    assert "first of two" in entries[0] and "second of two" in entries[0] and "conversations[1].value" in entries[0]
    assert entries[1].startswith('warning"><div class="loc">data/b.jsonl <span class="idx">record 0</span>')
    assert "whole file" in entries[2] and "cannot read" in entries[2]
    assert '<div class="filter" hidden>' in page  # shown by the inline JS only; the list reads fine without it


def test_flagged_records_capped_with_a_more_line():
    n = MAX_RECORDS + 37
    fs = [finding("M001", i) for i in range(n)] + [finding("A009", i) for i in range(0, n, 2)]
    page = render_html(report(fs, records=n), extras())
    entries = records(page)
    assert len(entries) == MAX_RECORDS
    assert entries[-1].startswith(f'error"><div class="loc">data/a.jsonl:{MAX_RECORDS} ')
    assert "… and 37 more flagged records in the JSON report." in page


def test_rule_table_counts_equal_by_code():
    fs = [finding("M001", i) for i in range(5)] + [finding("A009", i) for i in range(3)] + [finding("S004", 7)]
    fs.append(finding("Q123", 8, severity="info", message="from a newer audiodata"))
    rep = report(fs)
    page = render_html(rep, extras())
    rows = re.findall(r'<tr data-code="([^"]*)">.*?<td class="n">([\d,]+)</td>', page)
    assert {code: int(n.replace(",", "")) for code, n in rows} == rep["summary"]["by_code"]
    assert [code for code, _ in rows] == ["M001", "S004", "A009", "Q123"]  # errors first, then by count
    for code in ("M001", "S004", "A009"):
        assert REGISTRY[code].name in page
        assert escape(REGISTRY[code].summary) in page
    assert 'span class="sev warning">warning</span>' in page and "unknown rule" in page


def test_big_inputs_stay_small_and_bounded():
    rng = random.Random(2)
    durations = [rng.lognormvariate(1.8, 0.7) for _ in range(200_000)]
    fs = [finding("M001", i, message="x" * 50) for i in range(3000)]
    page = render_html(report(fs, records=200_000), extras(durations))
    assert len(bars(page, 0)) <= 30
    assert len(page) < 400_000


def rate_extras(**kw: Any) -> dict:
    """Transcript rates as lint's html_extras gives them: a normal corpus, one too-fast and one slow record."""
    rng = random.Random(3)
    latin = [rng.lognormvariate(2.5, 0.12) for _ in range(300)] + [29.0, 4.0]
    info = {"records": len(latin), "median": 12.2, "band": [7.3, 20.4], "bounds": [1.0, 25.0], "rates": latin}
    cjk = {"records": 3, "median": 5.0, "band": None, "bounds": [0.5, 12.0], "rates": [4.5, 5.0, 5.5]}
    return extras(transcript_rates={"latin": info, "cjk": cjk, **kw})


def test_transcript_rate_histogram_per_script_with_bounds_and_band():
    page = render_html(report([finding("R001", 0), finding("R005", 0)]), rate_extras())
    parsed = Page(page)
    assert parsed.problems == [] and parsed.count("section") == 5
    assert 'href="#transcripts"' in page and '<section id="transcripts">' in page
    assert "<h3>latin</h3>" in page and "<h3>cjk</h3>" in page  # one chart per script, most records first
    assert page.index("<h3>latin</h3>") < page.index("<h3>cjk</h3>")
    latin = bars(page, 2)
    counts = [int(re.search(r": ([\d,]+) records?", t).group(1)) for t, _ in latin]
    assert sum(counts) == 302
    classes = {t.split(" chars/s")[0]: c for t, c in latin if not t.startswith("over")}
    fast = next(c for r, c in classes.items() if float(r.split("–")[0]) <= 29 < float(r.split("–")[1]))
    slow = next(c for r, c in classes.items() if float(r.split("–")[0]) <= 4 < float(r.split("–")[1]))
    mid = next(c for r, c in classes.items() if float(r.split("–")[0]) <= 12 < float(r.split("–")[1]))
    assert (fast, slow, mid) == ("bar bad", "bar warn", "bar")  # over the 25/s bound; under the band; normal
    chart = page.split("<svg")[3].split("</svg>")[0]
    assert chart.count('class="marker"') == 2 and "min 1/s" in chart and "max 25/s" in chart
    assert chart.count('<rect class="band"') == 1
    assert "<span>band <b>7.3–20.4/s</b></span>" in page and "<span>outside bounds <b>1</b></span>" in page
    cjk = page.split("<svg")[4].split("</svg>")[0]
    assert '<rect class="band"' not in cjk and "needs 10 records" in page  # too few records for a band
    assert 'class="rec warning"' in page  # the flagged record is listed like any other


def test_no_transcript_section_without_transcription_records():
    for raw in (None, {}, {"latin": {"rates": []}}, "junk", {"latin": "junk"}):
        page = render_html(report([]), extras(transcript_rates=raw))
        assert 'id="transcripts"' not in page and 'href="#transcripts"' not in page
    odd = {"records": 2, "band": ["x", None], "bounds": "nope", "rates": [3.0, float("nan"), -1, "x", 9.0]}
    page = render_html(report([]), extras(transcript_rates={"<b>latin": odd}))
    assert Page(page).problems == [] and "&lt;b&gt;latin" in page and "<b>latin" not in page
    assert 'class="marker"' not in page.split('id="transcripts"')[1]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

# Records every script error of the page into an attribute of <html>, which --dump-dom then shows.
ERROR_HOOK = (
    "<script>window.addEventListener('error',function(e){var h=document.documentElement;"
    "h.setAttribute('data-errors',(h.getAttribute('data-errors')||'')+e.message+'|');});</script>"
)


def script_errors(dom: str) -> str | None:
    m = re.search(r'<html[^>]*\sdata-errors="([^"]*)"', dom)
    return m.group(1) if m else None


def browser_dom(page: str, tmp_path: Path) -> str:
    """The DOM after headless Chromium loaded the page and ran its script."""
    path = tmp_path / "report.html"
    path.write_text(page.replace("<head>", "<head>" + ERROR_HOOK, 1), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_report_runs_in_a_real_browser_without_script_errors(tmp_path: Path):
    fs = [finding("R001", 0, field="text"), finding("R005", 0), finding("A009", 1), finding("M001", 2)]
    previews = {"data/a.jsonl#0": {"mime": "audio/mpeg", "data": "SUQzBAAA", "field": "audio", "seconds": 1.7}}
    page = render_html(report(fs), rate_extras(previews=previews))
    dom = browser_dom(page, tmp_path)
    assert script_errors(dom) is None
    assert '<div class="filter">' in dom and "3 of 3 shown" in dom  # the inline script ran: filter shown and counted
    assert dom.count('<svg class="chart"') == 4 and '<section id="transcripts">' in dom
    broken = browser_dom(page.replace("</body>", "<script>undefinedFunction();</script></body>"), tmp_path)
    assert "undefinedFunction" in (script_errors(broken) or "")  # the hook does catch errors


def style_summary() -> dict:
    prof = {"punctuation_per_word": 0.0, "fillers": 0, "tags": 0, "top_fillers": {}, "top_tags": {}}
    libri = {**prof, "records": 12, "case": {"upper": 12}, "punctuation": {"none": 12}, "numbers": {"words": 2}}
    cv = {**prof, "records": 12, "case": {"cased": 12}, "punctuation": {"punctuated": 12}, "numbers": {}}
    cv |= {"punctuation_per_word": 0.21, "fillers": 3, "top_fillers": {"<b>uh</b>": 3}}
    both = {**prof, "records": 24, "case": {"upper": 12, "cased": 12}, "punctuation": {"none": 12, "punctuated": 12}}
    both |= {"numbers": {"words": 2}, "prompt": "<audio>Transcribe <i>this</i>."}
    by_source = {"libri.jsonl": libri, "cv.jsonl": cv}
    return {"records": 24, "by_source": by_source, "prompts": 3, "prompts_untracked_records": 0, "by_prompt": [both]}


def test_transcript_style_table_marks_mixed_prompts_and_escapes():
    r = report([finding("T002", 0, source="cv.jsonl")])
    r["summary"]["transcript_style"] = style_summary()
    page = render_html(r, extras())
    p = Page(page)
    assert p.problems == [] and '<section id="style">' in page and 'href="#style"' in page
    section = page[page.index('<section id="style">') : page.index("</section>", page.index('<section id="style">'))]
    rows = re.findall(r"<tr><td(.*?)</tr>", section)
    assert len(rows) == 3  # two input files, one prompt (the header row has <th> cells)
    assert section.count('class="mixed"') == 2  # the prompt's case and punctuation: two styles each
    assert "upper 12 · cased 12" in section and "2 more prompts" in section
    assert "<i>this</i>" not in section and "&lt;i&gt;this&lt;/i&gt;" in section and "<b>uh</b>" not in section
    assert '<section id="style">' not in render_html(report([]), extras())  # nothing profiled: no section


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_transcript_style_section_in_a_real_browser(tmp_path: Path):
    r = report([finding("T002", 0, source="cv.jsonl")])
    r["summary"]["transcript_style"] = style_summary()
    dom = browser_dom(render_html(r, extras()), tmp_path)
    assert script_errors(dom) is None
    assert '<section id="style">' in dom and dom.count('class="mixed"') == 2


def test_rl_tasks_section_counts_each_task_and_escapes():
    r = report([])
    r["summary"]["rl_tasks"] = {"mcq": 7, "asr": 2, "qa": 5, "<b>x</b>": 1}
    page = render_html(r, extras())
    assert Page(page).problems == [] and 'href="#rl"' in page
    section = page[page.index('<section id="rl">') : page.index("</section>", page.index('<section id="rl">'))]
    rows = re.findall(r"<tr><td><code>(.*?)</code></td><td class=\"n\">(\d+)</td>", section)
    assert rows == [("mcq", "7"), ("qa", "5"), ("asr", "2"), ("&lt;b&gt;x&lt;/b&gt;", "1")]  # most first
    assert "rl records <b>15</b>" in section and "tasks <b>4</b>" in section and "<b>x</b>" not in section
    assert '<section id="rl">' not in render_html(report([]), extras())  # no rl records: no section


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_rl_tasks_section_in_a_real_browser_with_a_screenshot(tmp_path: Path):
    """No script errors with the section there, and a screenshot to look at (kept in the test's tmp folder)."""
    from PIL import Image

    r = report([finding("Q003", 0, source="mmau.json"), finding("Q004", 3, source="mmau.json")])
    r["summary"]["rl_tasks"] = {"mcq": 7, "asr": 2, "qa": 5}
    page = render_html(r, extras())
    dom = browser_dom(page, tmp_path)
    assert script_errors(dom) is None and '<section id="rl">' in dom
    shot = tmp_path / "rl_tasks.png"
    path = tmp_path / "rl.html"
    path.write_text(page, encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1800", f"--screenshot={shot}",
           path.as_uri()]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 1800) and len(img.resize((60, 90)).getcolors(60 * 90) or []) > 20
