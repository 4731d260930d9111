"""The lint report as one self-contained HTML page: numbers, charts and flagged records at a glance.

The JSON report is the stable interface; this page is for people. It must open anywhere (a CI
artifact, an air-gapped box, an email attachment), so everything is inline: CSS, SVG charts, a
little optional JS for filtering, and audio previews as ``data:`` URIs. Nothing is fetched.
Everything that comes from the data (messages, fields, file names, codes) is untrusted and escaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np

import audiodata.rules.engine  # noqa: F401  (imports every rule module, so the registry is complete)
from audiodata.rules.registry import REGISTRY
from audiodata.rules.transcript import MIN_RECORDS as RATE_MIN_RECORDS
from audiodata.rules.transcript import K as RATE_K

#: Flagged records listed on the page; the rest are only in the JSON report (keeps the page light).
MAX_RECORDS = 500
#: Findings shown per record; a record with hundreds of findings should not drown the list.
MAX_FINDINGS_PER_RECORD = 20
#: Inputs listed in the header before "and N more".
MAX_INPUTS = 12
#: Clips shorter than this give Whisper-style encoders no audio tokens (rule A007).
SHORT_CLIP = 0.1
#: Source rates below this lose the band a 16 kHz model expects (rule A009).
LOW_RATE = 16000

SEVERITIES = ("error", "warning", "info")
_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_MIME = re.compile(r"[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+(;[A-Za-z0-9=.+-]+)*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_WS = re.compile(r"\s+")

# Chart geometry (SVG user units; the SVG scales to the section width).
_W, _H = 760, 250
_ML, _MR, _MT, _MB = 52, 14, 26, 44


def _e(value: object) -> str:
    """Escape for text and attribute values alike: the data is untrusted."""
    return escape("" if value is None else str(value), quote=True)


def _int(value: object) -> int:
    """Counts from a hand-edited or older report may be missing or odd; never crash on them."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def _num(n: int) -> str:
    return f"{n:,}"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{_num(n)} {word if n == 1 else (many or word + 's')}"


def _compact(n: int) -> str:
    """Bar labels must fit a ~24 px slot: 987, 1.2k, 34k, 1.2M."""
    if n < 1000:
        return str(n)
    for div, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1000, "k")):
        if n >= div:
            v = n / div
            return f"{v:.1f}".rstrip("0").rstrip(".") + unit if v < 10 else f"{v:.0f}{unit}"
    return str(n)  # pragma: no cover


def _axis_s(x: float) -> str:
    """Short axis label for a duration edge: 0.1s, 30s, 5m, 2h."""
    if x >= 3600 and x % 360 == 0:
        return f"{x / 3600:g}h"
    if x >= 120 and x % 6 == 0:
        return f"{x / 60:g}m"
    return f"{round(x, 3):g}s"


def _dur(x: float) -> str:
    """Readable duration for the stats line: 0.04 s, 9.5 s, 4 min 12 s, 3 h 5 min."""
    if x < 60:
        return f"{x:.3g} s" if x < 1 else f"{x:.2f} s" if x < 10 else f"{x:.1f} s"
    if x < 3600:
        m, s = divmod(round(x), 60)
        return f"{m} min {s} s" if s else f"{m} min"
    h, m = divmod(round(x / 60), 60)
    return f"{h} h {m} min" if m else f"{h} h"


def _rate(hz: int) -> str:
    return f"{hz / 1000:g} kHz"


@dataclass(frozen=True, slots=True)
class _Bar:
    """One bar of a vertical chart: its count, hover text and highlight class ('', 'bad', 'warn')."""

    count: int
    tip: str
    cls: str = ""
    label: str = ""  # categorical label under the bar ('' when the chart labels bin edges instead)


# --------------------------------------------------------------------------- charts


def _nice_step(raw: float, mults: Sequence[float] = (1, 2, 5, 10)) -> float:
    """The smallest 'round' step (1, 2, 5 x 10^k) not below ``raw``, so axes read naturally."""
    if raw <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(raw))
    for m in mults:
        if raw <= m * base + 1e-12:
            return m * base
    return 10 * base  # pragma: no cover


def _svg_bars(
    bars: Sequence[_Bar],
    label: str,
    x_title: str,
    edges: Sequence[str] | None = None,
    marker: tuple[int, str] | None = None,
    markers: Sequence[tuple[float, str]] = (),
    band: tuple[float, float] | None = None,
) -> str:
    """A vertical bar chart in inline SVG: counts above bars, a <title> per bar for hover.

    ``edges`` (len(bars)+1 labels) marks bin boundaries for histograms; otherwise each bar's own
    label is drawn under it. ``marker`` = (boundary index, text) draws a dashed vertical line;
    ``markers`` draws several (labels on alternating rows; a fractional index falls inside a bin).
    ``band`` = (first, last boundary index, fractional allowed) shades that range behind the bars.
    """
    marks: list[tuple[float, str]] = [*markers, *([marker] if marker is not None else [])]
    n = len(bars)
    pw, ph = _W - _ML - _MR, _H - _MT - _MB
    top = max((b.count for b in bars), default=0)
    step = max(1, int(_nice_step(top / 4))) if top else 1
    ymax = max(step, step * math.ceil(top / step))
    slot = pw / max(n, 1)
    bw = min(slot * 0.8, 90.0)
    base = _MT + ph
    out = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{_e(label)}">']
    if band is not None:
        x0, x1 = _ML + band[0] * slot, _ML + band[1] * slot
        out.append(f'<rect class="band" x="{x0:.1f}" y="{_MT:.1f}" width="{max(x1 - x0, 0):.1f}" height="{ph:.1f}"/>')
    for t in range(0, ymax + 1, step):
        y = base - t / ymax * ph
        out.append(f'<line class="grid" x1="{_ML}" x2="{_W - _MR}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{_ML - 6}" y="{y + 4:.1f}" text-anchor="end">{_compact(t)}</text>')
    fs = 11 if n <= 20 else 9
    for i, b in enumerate(bars):
        x = _ML + i * slot + (slot - bw) / 2
        h = b.count / ymax * ph
        if b.count:
            h = max(h, 2.0)  # a handful of outliers must stay visible next to a million normal clips
        cls = f"bar {b.cls}".strip()
        out.append(
            f'<g><title>{_e(b.tip)}</title><rect class="{cls}" x="{x:.1f}" y="{base - h:.1f}" width="{bw:.1f}" height="{h:.1f}"/>'
        )
        if b.count:
            tx, ty = x + bw / 2, base - h - 4
            out.append(f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="middle" font-size="{fs}">{_compact(b.count)}</text>')
        if edges is None and b.label:
            out.append(f'<text x="{x + bw / 2:.1f}" y="{base + 16}" text-anchor="middle">{_e(b.label)}</text>')
        out.append("</g>")
    if edges is not None:
        for i in _edge_labels(len(edges), slot, [m[0] for m in marks if isinstance(m[0], int)]):
            x = _ML + i * slot
            out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}"/>')
            out.append(f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{_e(edges[i])}</text>')
    out.append(f'<line class="axis" x1="{_ML}" x2="{_W - _MR}" y1="{base}" y2="{base}"/>')
    out.append(f'<text x="{_ML + pw / 2:.1f}" y="{_H - 6}" text-anchor="middle">{_e(x_title)}</text>')
    for k, (at, text) in enumerate(marks):
        x = _ML + at * slot
        anchor, dx = ("end", -5) if at > n * 0.6 else ("start", 5)
        y = _MT - 12 + (k % 2) * 14
        out.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{_MT - 10}" y2="{base}"/>')
        out.append(f'<text class="mlabel" x="{x + dx:.1f}" y="{y}" text-anchor="{anchor}">{_e(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def _edge_labels(n: int, slot: float, forced: Iterable[int] = (), gap: float = 38.0) -> list[int]:
    """Which bin edges get a label: the 0.1 s edge, the marker and the last edge always, others
    only where they do not collide (labels are ~30 units wide). 0 is left implicit."""
    must = {i for i in (1, n - 1, *forced) if 0 < i < n}
    keep = sorted(must)
    for i in range(1, n):
        if i not in must and all(abs(i - j) * slot >= gap for j in keep):
            keep.append(i)
    return sorted(keep)


def _legend(items: Iterable[tuple[str, str]]) -> str:
    spans = "".join(f'<span><i class="sw {cls}"></i>{_e(text)}</span>' for cls, text in items)
    return f'<p class="legend">{spans}</p>'


# --------------------------------------------------------------------------- durations


def _durations(raw: object) -> np.ndarray:
    """Finite, non-negative seconds as a float array; accepts lists, arrays, or junk (dropped)."""
    if raw is None:
        return np.zeros(0)
    try:
        arr = np.asarray(raw, dtype=float).ravel()
    except (TypeError, ValueError):
        arr = np.asarray([v for v in raw if isinstance(v, (int, float))] if isinstance(raw, Iterable) else [], dtype=float)
    return arr[np.isfinite(arr) & (arr >= 0)]


_DURATION_STEPS = (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)


def _duration_bins(d: np.ndarray, window: float | None) -> tuple[list[float], bool, bool]:
    """Bin edges for the duration histogram: [0, 0.1) first, then round linear steps.

    At most ~28 bars. A long tail (max far beyond the 99th percentile) goes into one overflow bar
    instead of squashing everything else into the first bin. ``window`` is always a bin edge when
    it falls inside the axis, so 'over the window' bars are exact. Returns (edges, overflow, marker).
    """
    hi = float(d.max())
    upper = hi
    if d.size >= 100:
        p99 = float(np.quantile(d, 0.99))
        if hi > 3 * p99 > 0:
            upper = p99 * 1.1
    marker = False
    if window is not None and window > SHORT_CLIP:
        if window < hi:
            upper = max(upper, window * 1.25)  # room for a few bars past the window
            marker = True
        elif window <= 1.5 * max(upper, SHORT_CLIP):
            upper = window  # the window closes the axis: everything visibly fits
            marker = True
    upper = max(upper, SHORT_CLIP * 2)
    step = next((s for s in _DURATION_STEPS if math.ceil(upper / s - 1e-9) <= 25), None)
    if step is None:
        step = _nice_step(upper / 25)
    count = math.ceil(upper / step - 1e-9)
    edges = [0.0, SHORT_CLIP] + [round(k * step, 6) for k in range(1, count + 1) if k * step > SHORT_CLIP + 1e-9]
    if marker and window is not None and window < edges[-1] and all(abs(e - window) > 1e-9 for e in edges):
        edges.append(float(window))
        edges.sort()
    overflow = hi > edges[-1]
    return edges, overflow, marker


def _duration_section(raw: object, window: float | None) -> str:
    d = _durations(raw)
    head = '<section id="durations"><h2>Clip durations</h2>'
    if d.size == 0:
        return head + '<p class="note">No clips were decoded, so there is no duration histogram.</p></section>'
    edges, overflow, marker = _duration_bins(d, window)
    counts = [int(c) for c in np.histogram(d, bins=edges)[0]]
    total = int(d.size)
    bars: list[_Bar] = []
    for i, c in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        cls = "bad" if hi <= SHORT_CLIP else "warn" if window is not None and lo >= window else ""
        tip = f"{lo:g}–{hi:g} s: {_plural(c, 'clip')} ({100 * c / total:.1f}%)"
        bars.append(_Bar(c, tip, cls))
    labels = [_axis_s(e) for e in edges]
    if overflow:
        over = int(np.count_nonzero(d > edges[-1]))
        cls = "warn" if window is not None and edges[-1] >= window else ""
        bars.append(_Bar(over, f"over {edges[-1]:g} s (up to {float(d.max()):g} s): {_plural(over, 'clip')}", cls))
        labels.append(_axis_s(float(d.max())))
    mark = None
    if marker and window is not None:
        at = min(range(len(edges)), key=lambda i: abs(edges[i] - window))  # window is an edge (see _duration_bins)
        mark = (at, f"model window {window:g} s")
    short = int(np.count_nonzero(d < SHORT_CLIP))
    stats = [
        ("clips", _num(total)),
        ("min", _dur(float(d.min()))),
        ("median", _dur(float(np.median(d)))),
        ("max", _dur(float(d.max()))),
        ("total", f"{float(d.sum()) / 3600:,.2f} h"),
        (f"under {SHORT_CLIP:g} s", _num(short)),
    ]
    legend = [("", "clips"), ("bad", f"under {SHORT_CLIP:g} s: no audio tokens")]
    note = ""
    if window is not None:
        longer = int(np.count_nonzero(d > window))
        stats.append((f"over {window:g} s", _num(longer)))
        legend.append(("warn", f"over the {window:g} s model window: truncated in training"))
        if not marker:
            note = f'<p class="note">Every clip fits the {window:g} s model window.</p>'
    chart = _svg_bars(bars, "histogram of clip durations", "clip duration", edges=labels, marker=mark)
    return head + _stats(stats) + chart + _legend(legend) + note + "</section>"


def _stats(items: Iterable[tuple[str, str]]) -> str:
    return '<p class="stats">' + "".join(f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in items) + "</p>"


# --------------------------------------------------------------------------- sample rates


def _rates_section(raw: object) -> str:
    head = '<section id="rates"><h2>Source sample rates</h2>'
    rates: dict[int, int] = {}
    odd: dict[str, int] = {}  # keys that are not numbers: shown in the stats line, not the chart
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            try:
                hz = int(float(k))
            except (TypeError, ValueError):
                odd[str(k)] = odd.get(str(k), 0) + _int(v)
                continue
            rates[hz] = rates.get(hz, 0) + _int(v)
    rates = {hz: c for hz, c in rates.items() if c > 0}
    if not rates:
        return head + '<p class="note">No sample rates were recorded.</p></section>'
    total = sum(rates.values())
    low = sum(c for hz, c in rates.items() if hz < LOW_RATE)
    bars = [
        _Bar(c, f"{hz:,} Hz: {_plural(c, 'clip')} ({100 * c / total:.1f}%)", "warn" if hz < LOW_RATE else "", _rate(hz))
        for hz, c in sorted(rates.items())
    ]
    stats = [("clips", _num(total)), ("distinct rates", _num(len(rates))), (f"under {_rate(LOW_RATE)}", _num(low))]
    stats += [(f"rate {k!r}", _num(v)) for k, v in odd.items()]
    chart = _svg_bars(bars, "histogram of source sample rates", "source sample rate")
    legend = _legend([("", "clips"), ("warn", f"under {_rate(LOW_RATE)}: upsampling cannot restore the band")])
    return head + _stats(stats) + chart + legend + "</section>"


# --------------------------------------------------------------------------- transcript rates


def _pair(raw: object) -> tuple[float, float] | None:
    """A (low, high) pair of finite numbers from the report, or None (older or hand-edited reports)."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) != 2:
        return None
    try:
        lo, hi = float(raw[0]), float(raw[1])
    except (TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi else None


def _rate_chart(script: str, info: Mapping[str, Any]) -> str:
    """One script's chars/s histogram: uniform bins, the absolute bounds (R001/R002) as dashed lines,
    the dataset band (R005) shaded; bins wholly outside either are coloured."""
    v = _durations(info.get("rates"))
    bounds, band = _pair(info.get("bounds")), _pair(info.get("band"))
    top = float(v.max())
    upper = top
    if v.size >= 100:
        p99 = float(np.quantile(v, 0.99))
        if top > 3 * p99 > 0:
            upper = p99 * 1.1  # a long tail goes into one overflow bar
    for edge in [*(band or ()), *(bounds[1:] if bounds else ())]:
        if upper < edge <= 1.5 * upper or (edge < top and edge > upper):
            upper = edge * 1.05  # show a bound when it is near the data or data lies beyond it
    upper = max(upper, 1.0)
    step = _nice_step(upper / 24)
    edges = [round(k * step, 6) for k in range(math.ceil(upper / step - 1e-9) + 1)]
    counts = [int(c) for c in np.histogram(v, bins=edges)[0]]
    total = int(v.size)

    def where(x: float) -> float | None:
        """``x`` as a fractional boundary index, or None beyond the axis."""
        return None if x > edges[-1] or x < 0 else x / step

    bars: list[_Bar] = []
    for i, c in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        outside = bounds is not None and (hi <= bounds[0] or lo >= bounds[1])
        off_band = band is not None and (hi <= band[0] or lo >= band[1])
        cls = "bad" if outside else "warn" if off_band else ""
        tip = f"{lo:g}–{hi:g} chars/s: {_plural(c, 'record')} ({100 * c / total:.1f}%)"
        bars.append(_Bar(c, tip, cls))
    labels = [f"{e:g}" for e in edges]
    over = int(np.count_nonzero(v > edges[-1]))
    if over:
        cls = "bad" if bounds is not None and edges[-1] >= bounds[1] else ""
        cls = cls or ("warn" if band is not None and edges[-1] >= band[1] else "")
        bars.append(_Bar(over, f"over {edges[-1]:g} chars/s (up to {top:.3g}): {_plural(over, 'record')}", cls))
        labels.append(f"{top:.3g}")
    marks: list[tuple[float, str]] = []
    if bounds is not None:
        for x, text in ((bounds[0], f"min {bounds[0]:g}/s"), (bounds[1], f"max {bounds[1]:g}/s")):
            at = where(x)
            if at is not None and x > 0:
                marks.append((at, text))
    shade = None
    if band is not None:
        lo_at, hi_at = where(band[0]), where(band[1])
        shade = (lo_at if lo_at is not None else 0.0, hi_at if hi_at is not None else float(len(edges) - 1))
    stats = [
        ("records", _num(total)),
        ("median", f"{float(np.median(v)):.3g}/s"),
        ("band", f"{band[0]:.3g}–{band[1]:.3g}/s" if band else f"needs {RATE_MIN_RECORDS} records"),
    ]
    if bounds is not None:
        stats.append(("bounds", f"{bounds[0]:g}–{bounds[1]:g}/s"))
        stats.append(("outside bounds", _num(int(np.count_nonzero((v < bounds[0]) | (v > bounds[1]))))))
    if band is not None:
        stats.append(("outside band", _num(int(np.count_nonzero((v < band[0]) | (v > band[1]))))))
    title = f"histogram of {script} transcript characters per second"
    chart = _svg_bars(bars, title, "characters per second", edges=labels, markers=marks, band=shade)
    legend = [("", "records"), ("band", f"this dataset's band (median ± {RATE_K:g} robust SD)")]
    legend.append(("warn", "outside the band: R005"))
    if bounds is not None:
        legend.append(("bad", f"outside the {script} bounds: R001/R002"))
    return f'<h3>{_e(script)}</h3>' + _stats(stats) + chart + _legend(legend)


#: Scripts drawn as charts; the rest are listed with their counts.
MAX_SCRIPTS = 4


def _transcript_section(raw: object) -> str:
    """Characters per second of transcription records, one histogram per script; '' when the run
    measured none (the dataset is not speech recognition), so other reports keep their layout."""
    if not isinstance(raw, Mapping):
        return ""
    scripts = [(str(k), v) for k, v in raw.items() if isinstance(v, Mapping) and _durations(v.get("rates")).size]
    if not scripts:
        return ""
    scripts.sort(key=lambda kv: (-_durations(kv[1].get("rates")).size, kv[0]))
    intro = (
        '<p class="note">Letters and digits of each transcription record\'s reply per second of its audio, per script. '
        "A rate far outside the bounds (R001/R002) or this dataset's band (R005) usually means the transcript belongs "
        "to another clip.</p>"
    )
    charts = "".join(_rate_chart(s, info) for s, info in scripts[:MAX_SCRIPTS])
    rest = ""
    if len(scripts) > MAX_SCRIPTS:
        more = ", ".join(f"{_e(s)} ({_num(_durations(i.get('rates')).size)})" for s, i in scripts[MAX_SCRIPTS:])
        rest = f'<p class="note">Also measured: {more}.</p>'
    return '<section id="transcripts"><h2>Transcript rate</h2>' + intro + charts + rest + "</section>"


# --------------------------------------------------------------------------- transcript style

_STYLE_COLUMNS = ("case", "punctuation", "numbers")


def _votes_cell(raw: object, judged: bool) -> str:
    """A style count cell: ``lower 12 · mixed 3``; marked when a prompt's transcripts hold two styles or more."""
    counts = {str(k): _int(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    counts = {k: v for k, v in counts.items() if v > 0}
    text = " · ".join(f"{_e(k)} {_num(v)}" for k, v in counts.items()) or "–"
    return f'<td class="mixed">{text}</td>' if judged and len(counts) > 1 else f"<td>{text}</td>"


def _style_row(name: str, p: Mapping[str, Any], judged: bool) -> str:
    per_word = p.get("punctuation_per_word")
    pw = f"{per_word:.2f}" if isinstance(per_word, (int, float)) and math.isfinite(per_word) else "–"
    cells = "".join(_votes_cell(p.get(c), judged) for c in _STYLE_COLUMNS[:2])
    cells += f'<td class="n">{pw}</td>' + _votes_cell(p.get("numbers"), judged)
    notes = []
    for key, top in (("fillers", "top_fillers"), ("tags", "top_tags")):
        shown = ", ".join(_e(k) for k in (p.get(top) or {}) if isinstance(p.get(top), Mapping))
        notes.append(f'<td class="n" title="{shown}">{_num(_int(p.get(key)))}</td>')
    return f'<tr><td class="loc">{_e(name)}</td><td class="n">{_num(_int(p.get("records")))}</td>{cells}{"".join(notes)}</tr>'


def _style_section(raw: object) -> str:
    """How the transcripts are written, per input file and per prompt ('' when none was profiled): a prompt row
    whose transcripts hold two styles of one trait is marked (T002 judges them)."""
    if not isinstance(raw, Mapping) or not _int(raw.get("records")):
        return ""
    found = raw.get("by_source")
    sources: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    prompts = [p for p in raw.get("by_prompt") or [] if isinstance(p, Mapping)]
    rows = [_style_row(str(k), v, False) for k, v in sources.items() if isinstance(v, Mapping)]
    rows += [_style_row("prompt: " + str(p.get("prompt", "")), p, True) for p in prompts]
    head = (
        "<thead><tr><th>Input file / prompt</th><th class=\"n\">Transcripts</th><th>Case</th><th>Punctuation</th>"
        "<th class=\"n\">Marks/word</th><th>Numbers</th><th class=\"n\">Fillers</th><th class=\"n\">Tags</th></tr></thead>"
    )
    intro = (
        '<p class="note">How the transcription records\' replies are written. Under one prompt the model should see one '
        "style: a marked cell holds two (T002 flags them from 10 transcripts with 5% or more in the other styles); fillers "
        "and tags that one input file writes and another never does are T003. "
        "<code>convert --normalize-transcripts basic|whisper-en</code> writes one style.</p>"
    )
    more = ""
    listed, total = len(prompts), _int(raw.get("prompts"))
    if total > listed:
        more = f'<p class="note">{_num(total - listed)} more prompts in the JSON report.</p>'
    table = f'<table class="style">{head}<tbody>{"".join(rows)}</tbody></table>'
    return '<section id="style"><h2>Transcript style</h2>' + intro + table + more + "</section>"


# --------------------------------------------------------------------------- findings


def _sev(value: object) -> str:
    """A known severity for CSS classes; unknown values are shown as info rather than trusted."""
    return value if isinstance(value, str) and value in _SEV_RANK else "info"


def _rules_section(by_code: Mapping[str, int], findings: Sequence[Mapping[str, Any]]) -> str:
    head = '<section id="rules"><h2>Findings by rule</h2>'
    if not by_code:
        return head + '<p class="note">No rule fired.</p></section>'
    seen_sev: dict[str, str] = {}
    for f in findings:
        seen_sev.setdefault(str(f.get("code")), _sev(f.get("severity")))
    rows = []
    for code, count in by_code.items():
        rule = REGISTRY.get(code)
        sev = _sev(rule.severity.value) if rule else seen_sev.get(code, "info")
        rows.append((_SEV_RANK[sev], -count, code, sev, rule))
    rows.sort(key=lambda r: r[:3])
    top = max(by_code.values()) or 1
    body = []
    for _, neg, code, sev, rule in rows:
        count = -neg
        name = rule.name if rule else "unknown rule"
        fix = rule.summary if rule else "Not in this version's rule registry."
        width = max(1.0, 100 * count / top)
        body.append(
            f'<tr data-code="{_e(code)}"><td><span class="b {sev}">{_e(code)}</span></td><td>{_e(name)}</td>'
            f'<td><span class="sev {sev}">{sev}</span></td><td class="n">{_num(count)}</td>'
            f'<td class="hb"><i class="hbar {sev}" style="width:{width:.0f}%"></i></td><td>{_e(fix)}</td></tr>'
        )
    table = (
        '<table class="rules"><thead><tr><th>Code</th><th>Rule</th><th>Severity</th><th class="n">Count</th><th></th>'
        "<th>How to fix</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>"
    )
    return head + table + "</section>"


def _by_code(summary: Mapping[str, Any], findings: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Counts per code from the summary; derived from the findings when an older report lacks them."""
    raw = summary.get("by_code")
    if isinstance(raw, Mapping):
        return {str(k): _int(v) for k, v in raw.items() if _int(v) > 0}
    out: dict[str, int] = {}
    for f in findings:
        code = str(f.get("code"))
        out[code] = out.get(code, 0) + 1
    return out


def _group(findings: Sequence[Mapping[str, Any]]) -> list[tuple[tuple[str | None, str | None], list[Mapping[str, Any]]]]:
    """Findings per record (source, index), records in order of first appearance (= input order)."""
    groups: dict[tuple[str | None, str | None], list[Mapping[str, Any]]] = {}
    for f in findings:
        src, idx = f.get("source"), f.get("index")
        key = (None if src is None else str(src), None if idx is None else str(idx))
        groups.setdefault(key, []).append(f)
    return list(groups.items())


def _player(preview: object) -> str:
    """An <audio> player for one preview, or '' when the preview is malformed (never a broken tag)."""
    if not isinstance(preview, Mapping):
        return ""
    mime, data = str(preview.get("mime") or "audio/mpeg"), preview.get("data")
    if not isinstance(data, str) or not _MIME.fullmatch(mime):
        return ""
    data = _WS.sub("", data)
    if not data or not _BASE64.fullmatch(data):
        return ""
    label = " · ".join(
        p
        for p in (
            str(preview.get("field") or ""),
            f"{float(preview['seconds']):.1f} s" if isinstance(preview.get("seconds"), (int, float)) else "",
        )
        if p
    )
    return (
        f'<div class="pv"><audio controls preload="none" src="data:{_e(mime)};base64,{_e(data)}"></audio>'
        f'<span class="fld">{_e(label)}</span></div>'
    )


def _records_section(findings: Sequence[Mapping[str, Any]], previews: Mapping[str, Any]) -> str:
    groups = _group(findings)
    head = '<section id="records"><h2>Flagged records</h2>'
    if not groups:
        return head + '<p class="note">No record has a finding.</p></section>'
    codes = sorted({str(f.get("code")) for f in findings})
    present = [s for s in SEVERITIES if any(_sev(f.get("severity")) == s for f in findings)]
    boxes = "".join(f'<label><input type="checkbox" name="sev" value="{s}" checked> {s}</label>' for s in present)
    options = "".join(f'<option value="{_e(c)}">{_e(c)}</option>' for c in codes)
    flt = (
        f'<div class="filter" hidden>{boxes}<label>code <select name="code"><option value="">all</option>{options}'
        '</select></label><span class="shown"></span></div>'
    )
    items = []
    for (src, idx), fs in groups[:MAX_RECORDS]:
        first = fs[0]
        line = first.get("line")
        where = src if src is not None else "(no file)"
        if line is not None:
            where += f":{line}"
        sub = f'<span class="idx">record {_e(idx)}</span>' if idx is not None else '<span class="idx">whole file</span>'
        worst = min((_sev(f.get("severity")) for f in fs), key=_SEV_RANK.__getitem__)
        lis = []
        for f in fs[:MAX_FINDINGS_PER_RECORD]:
            sev = _sev(f.get("severity"))
            fld = f' <code class="fld">{_e(f.get("field"))}</code>' if f.get("field") else ""
            lis.append(f'<li><span class="b {sev}">{_e(f.get("code"))}</span>{fld} {_e(f.get("message"))}</li>')
        if len(fs) > MAX_FINDINGS_PER_RECORD:
            lis.append(f'<li class="more">… and {_plural(len(fs) - MAX_FINDINGS_PER_RECORD, "more finding")}</li>')
        player = _player(previews.get(f"{src}#{idx}")) if src is not None and idx is not None else ""
        items.append(f'<li class="rec {worst}"><div class="loc">{_e(where)} {sub}</div><ul>{"".join(lis)}</ul>{player}</li>')
    more = ""
    if len(groups) > MAX_RECORDS:
        rest = len(groups) - MAX_RECORDS
        more = f'<p class="more">… and {_plural(rest, "more flagged record")} in the JSON report.</p>'
    intro = f'<p class="note">{_plural(len(groups), "record")} with findings, in input order.</p>'
    return head + intro + flt + '<ul class="recs">' + "".join(items) + "</ul>" + more + "</section>"


# --------------------------------------------------------------------------- rl tasks


def _rl_section(raw: object) -> str:
    """The rl records per task tag (``summary.rl_tasks``), as bars; empty without rl records."""
    tasks = {str(k): _int(v) for k, v in raw.items() if _int(v) > 0} if isinstance(raw, Mapping) else {}
    if not tasks:
        return ""
    order = sorted(tasks.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(tasks.values())
    most = max(tasks.values())
    rows = "".join(
        f'<tr><td><code>{_e(task)}</code></td><td class="n">{_num(n)}</td><td class="n">{n / total:.0%}</td>'
        f'<td class="hb"><i class="hbar" style="width:{max(1.0, 100 * n / most):.0f}%"></i></td></tr>'
        for task, n in order
    )
    note = (
        '<p class="note">Records without errors (what convert would write) per task tag. Each task is checked by its '
        "own rules (an <code>mcq</code> answer is one of its choices, an <code>asr</code> answer is measured as a "
        "transcript) and rewarded by its own check in <code>audiodata train grpo</code> (reward <code>answer</code>).</p>"
    )
    table = (
        '<table class="rltasks"><thead><tr><th>task</th><th class="n">records</th><th class="n">share</th><th></th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )
    stats = _stats([("rl records", _num(total)), ("tasks", str(len(tasks)))])
    return f'<section id="rl"><h2>RL tasks</h2>{stats}{table}{note}</section>'


# --------------------------------------------------------------------------- page


def _header(title: str, summary: Mapping[str, Any]) -> str:
    records, bad = _int(summary.get("records")), _int(summary.get("records_with_errors"))
    errors, warnings, infos = _int(summary.get("errors")), _int(summary.get("warnings")), _int(summary.get("infos"))
    inputs = [str(i) for i in summary.get("inputs") or []]
    shown = "".join(f"<li>{_e(i)}</li>" for i in inputs[:MAX_INPUTS])
    if len(inputs) > MAX_INPUTS:
        shown += f"<li>… and {_num(len(inputs) - MAX_INPUTS)} more</li>"
    inputs_html = f'<ul class="inputs">{shown}</ul>' if inputs else ""
    if errors:
        verdict = f'<p class="verdict bad">{_plural(errors, "error")} would fail or degrade training'
        verdict += f" ({_plural(bad, 'record')} affected)</p>" if bad else "</p>"
    else:
        extra = f" · {_plural(warnings, 'warning')} worth a look" if warnings else ""
        verdict = f'<p class="verdict ok">Ready to train{extra}</p>'
    cards = [
        ("", records, "records"),
        ("bad" if bad else "", bad, "records with errors"),
        ("bad" if errors else "", errors, "errors"),
        ("warn" if warnings else "", warnings, "warnings"),
    ]
    if infos:
        cards.append(("", infos, "infos"))
    cards_html = "".join(f'<div class="{f"card {c}".strip()}"><b>{_num(n)}</b><span>{t}</span></div>' for c, n, t in cards)
    return f'<header><h1>{_e(title)}</h1>{inputs_html}{verdict}<div class="cards">{cards_html}</div></header>'


def render_html(report: dict, extras: dict, title: str = "audiodata lint report") -> str:
    """Render the lint JSON report (plus audio stats and previews from ``extras``) as one HTML page.

    Self-contained and readable without JS, so it can be archived as a CI artifact and opened offline.
    """
    report = report if isinstance(report, Mapping) else {}
    extras = extras if isinstance(extras, Mapping) else {}
    summary = s if isinstance(s := report.get("summary"), Mapping) else {}
    findings = [f for f in report.get("findings") or [] if isinstance(f, Mapping)]
    previews = p if isinstance(p := extras.get("previews"), Mapping) else {}
    window_raw = extras.get("model_window")
    window = float(window_raw) if isinstance(window_raw, (int, float)) and window_raw > 0 else None
    durations, rates = extras.get("durations"), extras.get("sample_rates")
    checked = extras.get("audio_checked")
    if checked is None:  # older callers: infer from whether any audio stats were passed
        checked = _durations(durations).size > 0 or bool(rates)
    transcripts = _transcript_section(extras.get("transcript_rates")) if checked else ""
    if checked:
        audio = _duration_section(durations, window) + _rates_section(rates) + transcripts
    else:
        audio = (
            '<section id="audio"><h2>Audio</h2><p class="note">Audio was not checked in this run (decoding was skipped), '
            "so there are no duration or sample-rate histograms and no audio findings.</p></section>"
        )
    nav = '<nav><a href="#durations">durations</a><a href="#rates">sample rates</a>' if checked else "<nav>"
    if transcripts:
        nav += '<a href="#transcripts">transcript rate</a>'
    style = _style_section(summary.get("transcript_style"))
    if style:
        nav += '<a href="#style">transcript style</a>'
    rl = _rl_section(summary.get("rl_tasks"))
    if rl:
        nav += '<a href="#rl">RL tasks</a>'
    nav += '<a href="#rules">rules</a><a href="#records">records</a></nav>'
    body = (
        _header(title, summary)
        + "<main>"
        + nav
        + audio
        + style
        + rl
        + _rules_section(_by_code(summary, findings), findings)
        + _records_section(findings, previews)
        + "</main>"
        + f"<footer>audiodata · lint report version {_e(report.get('version', '?'))} · the JSON report has every finding</footer>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{body}<script>{_JS}</script></body></html>\n"
    )


_CSS = """
:root{--bg:#f6f6f3;--fg:#1c1c1e;--mut:#6b6b72;--card:#fff;--line:#e2e2dd;--err:#d0342c;--warn:#e0a100;--info:#2f6fdb;
--ok:#1e8449;--bar:#7b8da6}
@media (prefers-color-scheme:dark){:root{--bg:#141416;--fg:#ececef;--mut:#9c9ca4;--card:#1e1e22;--line:#34343a;--bar:#8fa0b8}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header,main,footer{max-width:1100px;margin:0 auto;padding:0 20px}
header{padding-top:28px}
h1{font-size:1.7rem;margin:0 0 6px}
h2{font-size:1.15rem;margin:0 0 10px}
code,.loc,.b{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.inputs{list-style:none;padding:0;margin:0 0 14px;color:var(--mut);font-size:.85rem;word-break:break-all}
.inputs li{display:inline}.inputs li+li:before{content:" · "}
.verdict{border-radius:10px;padding:12px 18px;font-weight:600;font-size:1.15rem;color:#fff;margin:0}
.verdict.ok{background:var(--ok)}.verdict.bad{background:var(--err)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin:14px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px}
.card b{display:block;font-size:2.1rem;line-height:1.15;font-variant-numeric:tabular-nums}
.card span{color:var(--mut);font-size:.85rem}
.card.bad b{color:var(--err)}.card.warn b{color:var(--warn)}
nav{display:flex;gap:16px;font-size:.9rem;margin:4px 0}nav a{color:var(--info);text-decoration:none}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin:14px 0}
.note{color:var(--mut);margin:0 0 8px}
.stats{display:flex;flex-wrap:wrap;gap:4px 22px;margin:0 0 6px;color:var(--mut);font-size:.9rem}
.stats b{color:var(--fg);font-variant-numeric:tabular-nums}
svg.chart{width:100%;height:auto;display:block;max-height:320px}
.chart text{fill:var(--mut);font-size:11px}
.chart .grid{stroke:var(--line)}.chart .axis{stroke:var(--mut)}
.bar{fill:var(--bar)}.bar.bad{fill:var(--err)}.bar.warn{fill:var(--warn)}
.chart .band{fill:var(--info);opacity:.1}
h3{font-size:1rem;margin:14px 0 4px}
.chart g:hover .bar{opacity:.7}
.marker{stroke:var(--fg);stroke-dasharray:6 4;stroke-width:1.5}
.chart .mlabel{fill:var(--fg);font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:.82rem;color:var(--mut);margin:6px 0 0}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;background:var(--bar)}
.sw.bad{background:var(--err)}.sw.warn{background:var(--warn)}.sw.band{background:var(--info);opacity:.25}
table{width:100%;border-collapse:collapse;font-size:.9rem}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:middle}
th{color:var(--mut);font-weight:600;font-size:.8rem}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.mixed{color:var(--warn);font-weight:600}
td.hb{width:16%;min-width:90px}
.hbar{display:block;height:10px;border-radius:5px;background:var(--bar)}
.hbar.error{background:var(--err)}.hbar.warning{background:var(--warn)}.hbar.info{background:var(--info)}
.b{display:inline-block;border-radius:4px;padding:0 6px;font-size:.78rem;font-weight:600;line-height:1.7;color:#fff}
.b.error{background:var(--err)}.b.warning{background:var(--warn);color:#1c1c1e}.b.info{background:var(--info)}
.sev{font-size:.82rem;font-weight:600}.sev.error{color:var(--err)}.sev.warning{color:var(--warn)}.sev.info{color:var(--info)}
.filter{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;font-size:.9rem;margin:0 0 8px}
.filter[hidden]{display:none}.shown{color:var(--mut)}
.recs{list-style:none;margin:0;padding:0}
.rec{border-top:1px solid var(--line);padding:9px 0 9px 12px;border-left:3px solid var(--info)}
.rec.error{border-left-color:var(--err)}.rec.warning{border-left-color:var(--warn)}
.loc{font-weight:600;font-size:.88rem;word-break:break-all}
.idx{color:var(--mut);font-weight:400;margin-left:6px}
.rec ul{list-style:none;margin:3px 0 0;padding:0}.rec li{margin:3px 0;overflow-wrap:anywhere}
.fld{color:var(--mut);font-size:.84rem}
.more{color:var(--mut)}
.pv{display:flex;flex-wrap:wrap;align-items:center;gap:10px;margin-top:6px}.pv audio{height:34px;max-width:100%}
.off{display:none}
footer{color:var(--mut);font-size:.8rem;padding-bottom:30px}
""".strip()

# Optional: filter the flagged records by severity and code. Without JS the filter stays hidden.
_JS = """
(function(){var f=document.querySelector('#records .filter');if(!f)return;f.hidden=false;
var recs=[].slice.call(document.querySelectorAll('#records .rec')),out=f.querySelector('.shown');
function run(){var sev={},code=f.querySelector('select').value,n=0;
[].forEach.call(f.querySelectorAll('input'),function(i){sev[i.value]=i.checked;});
recs.forEach(function(r){var any=false;[].forEach.call(r.querySelectorAll('li'),function(li){var b=li.querySelector('.b');
if(!b)return;var ok=sev[b.className.split(' ')[1]]!==false&&(!code||b.textContent===code);
li.classList.toggle('off',!ok);any=any||ok;});
r.classList.toggle('off',!any);if(any)n++;});out.textContent=n+' of '+recs.length+' shown';}
f.addEventListener('change',run);run();})();
""".strip()
