"""``eval.html``: the run's evaluation as one self-contained page, next to ``loss_curve.png``.

It shows the loss curve (embedded), the metric at every evaluation (a chart and a table), and each fixed
eval sample with its audio (embedded FLAC, playable offline), its reference, and the hypothesis of
every evaluation with the words that differ from the reference marked, flagged when it ran to
``max_new_tokens`` without a stop token or holds template tokens. A filter (inline script; without it
the page shows everything) narrows the hypotheses to one evaluation, to those that changed since the
previous evaluation, or to the flagged ones. Everything from the data is escaped; nothing is fetched.
"""

from __future__ import annotations

import base64
import difflib
import json
import re
from html import escape
from pathlib import Path
from typing import Any

from trainer.metrics import normalize

PAGE = "eval.html"
TEMPLATE_TOKEN = re.compile(r"(<\|[^|<>\s]{1,40}\|>)")
MIME = re.compile(r"audio/[a-z0-9.+-]+")
METRIC_NAMES = {"wer": "WER", "cer": "CER", "exact_match": "exact match", "bleu": "BLEU"}

STYLE = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:21px}
header .sub{margin:0;color:#c5cad6;font-size:13px}.stats{display:flex;flex-wrap:wrap;gap:10px;margin-top:12px}
.stats div{background:#2c3446;border-radius:6px;padding:6px 12px}.stats b{display:block;font-size:18px}
.stats span{font-size:12px;color:#c5cad6}
.alert{margin:12px 0 0;padding:8px 12px;border-radius:6px;background:#f8d7a8;color:#4a2d00;font-size:14px}
main{max-width:1180px;margin:0 auto;padding:8px 24px 40px}
section{background:#fff;border-radius:8px;margin:18px 0;padding:14px 20px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:17px;margin:2px 0 10px}img.curve{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{font-weight:600;color:#4b5366}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.chart{display:block;margin:0 0 10px}.chart .line{fill:none;stroke:#2f6fde;stroke-width:2}.chart .pt{fill:#2f6fde}
.chart .axis{stroke:#9aa1b1;stroke-width:1}.chart text{font-size:11px;fill:#4b5366}
.filter{display:flex;flex-wrap:wrap;gap:14px;align-items:center;margin:0 0 12px;font-size:14px}
.filter .count{color:#4b5366}article.sample{border:1px solid #e0e3e9;border-radius:8px;padding:10px 14px;margin:10px 0}
article.sample h3{margin:0 0 6px;font-size:15px}article.sample h3 span{color:#6b7385;font-weight:400;font-size:13px}
.players{display:flex;flex-wrap:wrap;gap:8px;margin:4px 0}audio{height:34px;width:300px}.ask,.ref{margin:4px 0}
.label{display:inline-block;min-width:84px;color:#6b7385;font-size:13px}
td.step{white-space:nowrap;color:#4b5366;width:80px}td.score{white-space:nowrap;width:110px}
td.txt{word-break:break-word}ins{background:#ffd9d6;text-decoration:none;border-radius:3px;padding:0 2px}
del{color:#9a4a45;background:#f3ece0;border-radius:3px;padding:0 2px}
.flag{display:inline-block;font-size:12px;border-radius:10px;padding:0 8px;margin:1px 4px 1px 0;background:#f8d7a8;color:#4a2d00}
.flag.err{background:#f5c2c0;color:#5c0b07}.same{color:#8a91a1;font-size:12px}.empty{color:#8a91a1;font-style:italic}
footer{color:#6b7385;font-size:12px;text-align:center;padding:0 0 24px}
"""

SCRIPT = """
(function(){
  var f=document.querySelector('.filter');if(!f)return;f.hidden=false;
  var step=f.querySelector('select'),changed=document.getElementById('only-changed');
  var flagged=document.getElementById('only-flagged');
  var count=f.querySelector('.count');
  function apply(){
    var rows=document.querySelectorAll('tr.hyp'),shown=0;
    for(var i=0;i<rows.length;i++){var r=rows[i];
      var ok=(step.value==='all'||r.getAttribute('data-step')===step.value)
        &&(!changed.checked||r.getAttribute('data-changed')==='1')&&(!flagged.checked||r.getAttribute('data-flagged')==='1');
      r.hidden=!ok;if(ok)shown++;}
    var narrowed=step.value!=='all'||changed.checked||flagged.checked;
    var cards=document.querySelectorAll('article.sample');
    for(var j=0;j<cards.length;j++){cards[j].hidden=narrowed&&!cards[j].querySelector('tr.hyp:not([hidden])');}
    count.textContent=shown+' of '+rows.length+' hypotheses shown';
  }
  step.addEventListener('change',apply);changed.addEventListener('change',apply);flagged.addEventListener('change',apply);apply();
})();
"""


def write_eval_page(report: dict[str, Any], out: Path, audio: dict[int, list[tuple[str, bytes]]] | None = None) -> Path:
    """Write ``out/eval.html`` from a training report with an ``evaluation`` section (and the loss curve
    at ``out/loss_curve.png`` when there is one); ``audio`` holds each fixed sample's clips by key."""
    curve = out / "loss_curve.png"
    if report.get("in_progress"):  # mid-run: bring the curve up to date first
        from trainer.report import plot_loss

        plot_loss(report, curve)
    png = curve.read_bytes() if curve.is_file() else None
    page = render_eval_page(report, png, audio or {})
    path = out / PAGE
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def render_eval_page(report: dict[str, Any], loss_png: bytes | None, audio: dict[int, list[tuple[str, bytes]]]) -> str:
    ev = report.get("evaluation") or {}
    metric = str(ev.get("metric") or "")
    name = METRIC_NAMES.get(metric, metric or "metric")
    history = [h for h in ev.get("history") or [] if isinstance(h, dict)]
    title = f"Evaluation · {str(report.get('task', '')).upper()} {report.get('family', '')} · {report.get('steps', 0)} steps"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        _header(report, ev, name, history, title),
        "<main>",
        loss_section(loss_png),
        _metric_section(ev, name, history),
        _samples_section(ev, name, history, audio),
        "</main>",
        "<footer>written by audiodata train · self-contained: the loss curve and the audio are embedded</footer>",
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _fmt(metric: str, value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value:.2f}" if metric == "bleu" else f"{value:.4f}" if metric in ("wer", "cer") else f"{value:.3f}"


def _header(report: dict[str, Any], ev: dict[str, Any], name: str, history: list[dict[str, Any]], title: str) -> str:
    metric = str(ev.get("metric") or "")
    last = history[-1] if history else {}
    direction = "lower is better" if ev.get("lower_is_better") else "higher is better"
    sub = " · ".join(
        escape(str(x))
        for x in (
            f"model {report.get('model', '')}",
            f"split {ev.get('split', '')}",
            f"{name} ({ev.get('metric_reason', '')}; {direction})",
            f"greedy, at most {ev.get('max_new_tokens', '?')} new tokens",
            f"stops at {', '.join(ev.get('stop_tokens') or []) or 'EOS'}",
        )
    )
    values = [h["value"] for h in history if isinstance(h.get("value"), (int, float))]
    best = (min(values) if ev.get("lower_is_better") else max(values)) if values else None
    stats = [
        (_fmt(metric, last.get("value")), f"{name} at step {last.get('step', '–')}"),
        (_fmt(metric, best), f"best {name}"),
        (str(len(history)), "evaluations"),
        (str(ev.get("generated_per_eval", 0)), "records generated per evaluation"),
        (str(last.get("no_stop", 0)), "replies without a stop token"),
        (str(last.get("template_tokens", 0)), "replies with template tokens"),
    ]
    boxes = "".join(f"<div><b>{escape(v)}</b><span>{escape(k)}</span></div>" for v, k in stats)
    alerts = []
    if report.get("in_progress"):
        alerts.append(f"Training in progress (step {report.get('steps', 0)}): this page is rewritten at every evaluation.")
    scored = int(last.get("scored") or 0) + int(last.get("unscored") or 0)
    if last.get("no_stop"):
        alerts.append(
            f"{last['no_stop']} of {scored} replies ran to max_new_tokens without a stop token: "
            "check that training taught the end-of-turn token (labels include it) and that the chat template matches the model."
        )
    if last.get("template_tokens"):
        alerts.append(
            f"{last['template_tokens']} of {scored} replies hold template tokens (role headers, <|im_start|>, ...): "
            "the chat template at training and at generation differ, or the stop token is wrong."
        )
    if last.get("failed"):
        alerts.append(f"{last['failed']} records could not be generated for (see evaluation.jsonl).")
    alert = "".join(f'<p class="alert">{escape(a)}</p>' for a in alerts)
    return f'<header><h1>{escape(title)}</h1><p class="sub">{sub}</p><div class="stats">{boxes}</div>{alert}</header>'


def loss_section(png: bytes | None) -> str:
    """The loss curve (``loss_curve.png``) embedded as a section; shared by ``eval.html`` and ``rl.html``."""
    if not png:
        return '<section id="loss"><h2>Loss</h2><p class="empty">No loss curve yet.</p></section>'
    data = base64.b64encode(png).decode("ascii")
    img = f'<img class="curve" alt="training loss curve" src="data:image/png;base64,{data}">'
    return f'<section id="loss"><h2>Loss</h2>{img}</section>'


def _metric_section(ev: dict[str, Any], name: str, history: list[dict[str, Any]]) -> str:
    metric = str(ev.get("metric") or "")
    if not history:
        return f'<section id="metric"><h2>{escape(name)} per evaluation</h2><p class="empty">No evaluation yet.</p></section>'
    rows = []
    for h in history:
        loss = h.get("eval_loss")
        cells = [
            str(h.get("step", "")),
            "" if h.get("epoch") is None else f"{h['epoch']:.2f}",
            f"{loss:.4f}" if isinstance(loss, (int, float)) else "–",
            _fmt(metric, h.get("value")),
            str(h.get("scored", 0)),
            str(h.get("no_stop", 0)),
            str(h.get("template_tokens", 0)),
            str(h.get("failed", 0)),
            f"{h.get('seconds', 0)}",
        ]
        rows.append("<tr>" + "".join(f'<td class="n">{escape(c)}</td>' for c in cells) + "</tr>")
    head = ["step", "epoch", "eval loss", name, "scored", "no stop token", "template tokens", "failed", "seconds"]
    table = "<table><thead><tr>" + "".join(f'<th class="n">{escape(c)}</th>' for c in head) + "</tr></thead><tbody>"
    table += "".join(rows) + "</tbody></table>"
    return f'<section id="metric"><h2>{escape(name)} per evaluation</h2>{chart(history, metric, name)}{table}</section>'


#: Metrics charted on a 0-1 scale while every value is within it (shares; rl.html charts rewards on it too).
SHARE_METRICS = ("wer", "cer", "exact_match")


def chart(history: list[dict[str, Any]], metric: str, name: str) -> str:
    """An inline SVG line chart of ``history``'s ``{"step", "value"}`` points (``eval.html`` and ``rl.html``); ``metric``
    picks the number format and, for :data:`SHARE_METRICS`, a 0-1 scale."""
    points = [
        (h["step"], h["value"]) for h in history if isinstance(h.get("value"), (int, float)) and isinstance(h.get("step"), int)
    ]
    if not points:
        return ""
    w, h, left, right, top, bottom = 640, 180, 56, 32, 12, 28
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys) if max(ys) > 0 else 1.0
    if metric in SHARE_METRICS and y1 <= 1.0:
        y1 = 1.0

    def px(x: float) -> float:
        return left + (0.5 if x1 == x0 else (x - x0) / (x1 - x0)) * (w - left - right)

    def py(y: float) -> float:
        return top + (1 - (y - y0) / ((y1 - y0) or 1)) * (h - top - bottom)

    line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    dots = "".join(
        f'<circle class="pt" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5">'
        f"<title>step {x}: {escape(_fmt(metric, y))}</title></circle>"
        for x, y in points
    )
    axes = (
        f'<line class="axis" x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}"/>'
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}"/>'
        f'<text x="{left - 6}" y="{py(y1) + 4:.1f}" text-anchor="end">{escape(_fmt(metric, y1))}</text>'
        f'<text x="{left - 6}" y="{py(y0) + 4:.1f}" text-anchor="end">{escape(_fmt(metric, y0))}</text>'
        f'<text x="{px(x0):.1f}" y="{h - 8}" text-anchor="middle">step {x0}</text>'
        + (f'<text x="{px(x1):.1f}" y="{h - 8}" text-anchor="middle">step {x1}</text>' if x1 != x0 else "")
    )
    label = f"{name} by step"
    return (
        f'<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{escape(label)}">'
        f'{axes}<polyline class="line" points="{line}"/>{dots}</svg>'
    )


def _samples_section(
    ev: dict[str, Any], name: str, history: list[dict[str, Any]], audio: dict[int, list[tuple[str, bytes]]]
) -> str:
    samples = [s for s in ev.get("samples") or [] if isinstance(s, dict)]
    head = f'<section id="samples"><h2>Fixed eval samples ({len(samples)})</h2>'
    if not samples:
        why = "eval_samples is 0, or the eval set has no reply to compare"
        return head + f'<p class="empty">No fixed samples ({why}).</p></section>'
    steps = [h["step"] for h in history if "step" in h]
    options = '<option value="all">all evaluations</option>' + "".join(
        f'<option value="{escape(str(s))}">step {escape(str(s))}</option>' for s in reversed(steps)
    )
    filt = (
        '<div class="filter" hidden><label>show <select aria-label="evaluation step">'
        f"{options}</select></label>"
        '<label><input type="checkbox" id="only-changed"> only hypotheses that changed since the previous evaluation</label>'
        '<label><input type="checkbox" id="only-flagged"> only flagged</label><span class="count"></span></div>'
    )
    cards = "".join(_sample(s, str(ev.get("metric") or ""), name, audio.get(s.get("key"), [])) for s in samples)  # type: ignore[arg-type]
    return head + filt + cards + "</section>"


def _sample(s: dict[str, Any], metric: str, name: str, clips: list[tuple[str, bytes]]) -> str:
    seconds = s.get("clip_seconds") or []
    info = f"{len(seconds)} clip{'s' if len(seconds) != 1 else ''}, {sum(seconds):.1f} s" if seconds else "no audio"
    players = "".join(
        f'<audio controls preload="metadata" src="data:{escape(mime)};base64,{base64.b64encode(data).decode("ascii")}"></audio>'
        for mime, data in clips
        if MIME.fullmatch(mime) and data
    )
    ref = str(s.get("reference") or "")
    rows = []
    previous: str | None = None
    for h in s.get("hypotheses") or []:
        text = str(h.get("text") or "")
        changed = previous is None or text != previous
        previous = text
        flags = []
        if h.get("error"):
            flags.append(f'<span class="flag err">not generated: {escape(str(h["error"]))}</span>')
        else:
            if not h.get("stopped"):
                flags.append('<span class="flag">no stop token</span>')
            if h.get("template_tokens"):
                toks = ", ".join(str(t) for t in h["template_tokens"])
                flags.append(f'<span class="flag">template tokens: {escape(toks)}</span>')
        body = diff_html(ref, text) if text else '<span class="empty">(empty)</span>'
        if not changed:
            body += ' <span class="same">(unchanged)</span>'
        step = escape(str(h.get("step", "")))
        rows.append(
            f'<tr class="hyp" data-step="{step}" data-changed="{int(changed)}" data-flagged="{int(bool(flags))}">'
            f'<td class="step">step {step}</td><td class="txt">{body} {"".join(flags)}</td>'
            f'<td class="score">{escape(name)} {escape(_fmt(metric, h.get("score")))}</td></tr>'
        )
    table = f'<table class="hyps"><tbody>{"".join(rows)}</tbody></table>' if rows else '<p class="empty">No evaluation yet.</p>'
    key = escape(json.dumps(s.get("key")))
    return (
        f'<article class="sample" data-key="{key}"><h3>{escape(str(s.get("id") or "record " + str(s.get("row"))))} '
        f"<span>{escape(info)}</span></h3>"
        + (f'<div class="players">{players}</div>' if players else "")
        + f'<p class="ask"><span class="label">prompt</span>{escape(str(s.get("prompt") or ""))}</p>'
        f'<p class="ref"><span class="label">reference</span>{escape(ref)}</p>{table}</article>'
    )


def diff_html(reference: str, hypothesis: str) -> str:
    """The hypothesis with the words that differ from the reference (compared normalised) in ``<ins>`` and the
    reference words it misses in ``<del>``, everything escaped; a template token (``<|im_start|>``) counts as
    a word of its own, so it stands out even when glued to the reply."""
    hyp_words, ref_words = TEMPLATE_TOKEN.sub(r" \1 ", hypothesis).split(), reference.split()
    a, b = [normalize(w) for w in ref_words], [normalize(w) for w in hyp_words]
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape(" ".join(hyp_words[j1:j2])))
            continue
        if op in ("replace", "delete") and i2 > i1:
            out.append(f"<del>{escape(' '.join(ref_words[i1:i2]))}</del>")
        if op in ("replace", "insert") and j2 > j1:
            out.append(f"<ins>{escape(' '.join(hyp_words[j1:j2]))}</ins>")
    return " ".join(out)
