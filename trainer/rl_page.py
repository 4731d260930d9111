"""``rl.html``: a GRPO run on one self-contained page, built with the evaluation page's pieces (trainer/eval_page.py:
its style, charts, word diff, embedded audio players and sample filter).

It shows the mean reward and each reward function's mean by step, the KL to the reference (when ``beta`` > 0),
the completion lengths (mean, min, max) and the clipped share, the loss curve, and each fixed prompt with its audio,
its reference answer (and choices) and the greedy completion of every sampling with its rewards, the words that
differ from the answer marked. Everything from the data is escaped; nothing is fetched.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from trainer.eval_page import MIME, SCRIPT, STYLE, chart, diff_html, loss_section

PAGE = "rl.html"
SHARES = ("clipped_ratio",)  # charted on a 0-1 scale
#: TRL's logged GRPO metrics the report keeps per logging step (its names, ours).
METRICS = {
    "reward": "reward",
    "reward_std": "reward_std",
    "kl": "kl",
    "entropy": "entropy",
    "completions/mean_length": "completion_mean_length",
    "completions/min_length": "completion_min_length",
    "completions/max_length": "completion_max_length",
    "completions/clipped_ratio": "clipped_ratio",
    "frac_reward_zero_std": "frac_reward_zero_std",
    "loss": "loss",
}


def history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The GRPO metrics of each training log line: mean reward, per-function means, KL, lengths, loss."""
    out = []
    for e in log_history:
        if "reward" not in e:
            continue
        h: dict[str, Any] = {"step": e.get("step")}
        h.update({ours: e[theirs] for theirs, ours in METRICS.items() if theirs in e})
        h["rewards"] = {k.split("/")[1]: v for k, v in e.items() if k.startswith("rewards/") and k.endswith("/mean")}
        out.append(h)
    return out


def eval_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The held-out evaluations (``eval_split``/``eval_holdout``): TRL logs each with the ``eval_`` prefix."""
    out = []
    for e in log_history:
        if "eval_reward" not in e:
            continue
        h: dict[str, Any] = {"step": e.get("step")}
        h.update({ours: e[f"eval_{theirs}"] for theirs, ours in METRICS.items() if f"eval_{theirs}" in e})
        h["rewards"] = {k.split("/")[1]: v for k, v in e.items() if k.startswith("eval_rewards/") and k.endswith("/mean")}
        out.append(h)
    return out


def write_rl_page(report: dict[str, Any], out: Path, audio: dict[int, list[tuple[str, bytes]]] | None = None) -> Path:
    curve = out / "loss_curve.png"
    page = render_rl_page(report, curve.read_bytes() if curve.is_file() else None, audio or {})
    path = out / PAGE
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def render_rl_page(report: dict[str, Any], loss_png: bytes | None, audio: dict[int, list[tuple[str, bytes]]]) -> str:
    hist = [h for h in report.get("rl_history") or [] if isinstance(h, dict)]
    title = f"GRPO · {report.get('family', '')} · {report.get('steps', 0)} steps"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        _header(report, hist, title),
        "<main>",
        _rewards_section(report, hist),
        _eval_section(report),
        _series_section("kl", "KL to the reference", [] if _kl_note(report) else hist, ["kl"], _kl_note(report)),
        _series_section("lengths", "Completion length (tokens)", hist, ["completion_mean_length", "clipped_ratio"]),
        loss_section(loss_png),
        _samples_section(report, audio),
        "</main>",
        "<footer>written by audiodata train grpo · self-contained: the loss curve and the audio are embedded</footer>",
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _num(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "–"


def _header(report: dict[str, Any], hist: list[dict[str, Any]], title: str) -> str:
    cfg = report.get("config") or {}
    rw = report.get("rewards") or {}
    funcs = ", ".join(f"{n} ×{w:g}" for n, w in zip(rw.get("functions") or [], rw.get("weights") or [], strict=False))
    sub = " · ".join(
        escape(str(x))
        for x in (
            f"model {report.get('model', '')}",
            f"data {report.get('data', '')}",
            f"rewards {funcs or '–'}",
            f"{cfg.get('num_generations', '?')} completions per prompt, temperature {cfg.get('temperature', '?')}",
            f"beta {cfg.get('beta', '?')}",
        )
    )
    last = hist[-1] if hist else {}
    stats = [
        (_num(report.get("reward_first")), "mean reward, first log"),
        (_num(report.get("reward_last")), "mean reward, last log"),
        (_num(last.get("kl"), 4), "KL, last log"),
        (_num(last.get("completion_mean_length"), 1), "mean completion tokens"),
        (str(report.get("train_records", 0)), "prompts"),
        (str(report.get("repeated_prompts_per_epoch", 0)), "prompts repeated to fill an epoch"),
    ]
    boxes = "".join(f"<div><b>{escape(v)}</b><span>{escape(k)}</span></div>" for v, k in stats)
    alerts = []
    skipped = (report.get("skipped") or {}).get("records")
    if skipped:
        alerts.append(f"{skipped} records were skipped (see skipped.jsonl).")
    if last.get("frac_reward_zero_std") == 1.0:
        alerts.append(
            f"At the last log every group's completions got the same reward (mean {_num(last.get('reward'))}): no advantage, "
            "so no gradient. At the best reward that is the task learned; otherwise the task is too hard or too easy "
            "for the model as it is (more num_generations or a higher temperature widen the spread)."
        )
    alert = "".join(f'<p class="alert">{escape(a)}</p>' for a in alerts)
    return f'<header><h1>{escape(title)}</h1><p class="sub">{sub}</p><div class="stats">{boxes}</div>{alert}</header>'


def _points(hist: list[dict[str, Any]], key: str, inner: str | None = None) -> list[dict[str, Any]]:
    out = []
    for h in hist:
        v = (h.get(key) or {}).get(inner) if inner else h.get(key)
        if isinstance(v, (int, float)) and isinstance(h.get("step"), int):
            out.append({"step": h["step"], "value": float(v)})
    return out


def _rewards_section(report: dict[str, Any], hist: list[dict[str, Any]]) -> str:
    names = list((report.get("rewards") or {}).get("functions") or [])
    head = '<section id="rewards"><h2>Rewards by step</h2>'
    if not hist:
        return head + '<p class="empty">No training step logged yet.</p></section>'
    # "exact_match": one of the eval page's SHARE_METRICS, charted 0 to 1 while every value is within it
    charts = [f"<h3>mean reward (weighted sum)</h3>{chart(_points(hist, 'reward'), 'exact_match', 'mean reward')}"]
    for n in names:
        charts.append(f"<h3>{escape(n)}</h3>{chart(_points(hist, 'rewards', n), 'exact_match', n)}")
    cols = ["step", "reward", "reward std", *names, "KL", "mean length", "clipped", "loss"]
    rows = []
    for h in hist:
        cells = [
            str(h.get("step", "")),
            _num(h.get("reward")),
            _num(h.get("reward_std")),
            *[_num((h.get("rewards") or {}).get(n)) for n in names],
            _num(h.get("kl"), 4),
            _num(h.get("completion_mean_length"), 1),
            _num(h.get("clipped_ratio"), 2),
            _num(h.get("loss"), 4),
        ]
        rows.append("<tr>" + "".join(f'<td class="n">{escape(c)}</td>' for c in cells) + "</tr>")
    table = "<table><thead><tr>" + "".join(f'<th class="n">{escape(c)}</th>' for c in cols) + "</tr></thead><tbody>"
    summary = f"<summary>every logged step ({len(rows)})</summary>"
    return head + "".join(charts) + f"<details>{summary}{table}{''.join(rows)}</tbody></table></details></section>"


def _eval_section(report: dict[str, Any]) -> str:
    """Mean reward on the held-out prompts by evaluation (sampled as in training), when the run had any."""
    ev = report.get("evaluation") or {}
    if not ev:
        return ""
    hist = [h for h in ev.get("history") or [] if isinstance(h, dict)]
    what = f"{ev.get('records', 0)} held-out prompts ({ev.get('source', '')})"
    head = f'<section id="evaluation"><h2>Held-out reward by step</h2><p class="sub">{escape(what)}</p>'
    if not hist:
        return head + '<p class="empty">No evaluation logged yet.</p></section>'
    names = list((report.get("rewards") or {}).get("functions") or [])
    charts = f"<h3>mean reward, held out</h3>{chart(_points(hist, 'reward'), 'exact_match', 'held-out reward')}"
    cols = ["step", "reward", *names, "mean length", "loss"]
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(c)}</td>'
            for c in (
                str(h.get("step", "")),
                _num(h.get("reward")),
                *[_num((h.get("rewards") or {}).get(n)) for n in names],
                _num(h.get("completion_mean_length"), 1),
                _num(h.get("loss"), 4),
            )
        )
        + "</tr>"
        for h in hist
    )
    heads = "".join(f'<th class="n">{escape(c)}</th>' for c in cols)
    table = f"<table><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>"
    return head + charts + table + "</section>"


def _kl_note(report: dict[str, Any]) -> str | None:
    beta = (report.get("config") or {}).get("beta")
    return "beta is 0: no reference model, so no KL is computed." if beta == 0 else None


def _series_section(sid: str, title: str, hist: list[dict[str, Any]], keys: list[str], note: str | None = None) -> str:
    head = f'<section id="{escape(sid)}"><h2>{escape(title)}</h2>'
    charts = [
        f"<h3>{escape(k.replace('_', ' '))}</h3>{chart(pts, 'exact_match' if k in SHARES else '', k)}"
        for k in keys
        if (pts := _points(hist, k))
    ]
    if not charts:
        return head + f'<p class="empty">{escape(note or "Not logged yet.")}</p></section>'
    return head + "".join(charts) + "</section>"


def _samples_section(report: dict[str, Any], audio: dict[int, list[tuple[str, bytes]]]) -> str:
    samples = [s for s in report.get("samples") or [] if isinstance(s, dict)]
    head = f'<section id="samples"><h2>Fixed prompts ({len(samples)}): greedy completions and their rewards</h2>'
    if not samples:
        return head + '<p class="empty">No fixed prompts (rl_samples is 0).</p></section>'
    steps = sorted({c["step"] for s in samples for c in s.get("completions") or [] if "step" in c})
    options = '<option value="all">all samplings</option>' + "".join(
        f'<option value="{escape(str(s))}">step {escape(str(s))}</option>' for s in reversed(steps)
    )
    filt = (
        '<div class="filter" hidden><label>show <select aria-label="sampling step">'
        f"{options}</select></label>"
        '<label><input type="checkbox" id="only-changed"> only completions that changed since the previous sampling</label>'
        '<label><input type="checkbox" id="only-flagged"> only flagged</label><span class="count"></span></div>'
    )
    names = list((report.get("rewards") or {}).get("functions") or [])
    cards = "".join(_sample(s, names, audio.get(s.get("key"), [])) for s in samples)  # type: ignore[arg-type]
    return head + filt + cards + "</section>"


def _sample(s: dict[str, Any], names: list[str], clips: list[tuple[str, bytes]]) -> str:
    seconds = s.get("clip_seconds") or []
    info = f"{len(seconds)} clip{'s' if len(seconds) != 1 else ''}, {sum(seconds):.1f} s" if seconds else "no audio"
    if s.get("task"):
        info += f" · task {s['task']}"
    players = "".join(
        f'<audio controls preload="metadata" src="data:{escape(mime)};base64,{base64.b64encode(data).decode("ascii")}"></audio>'
        for mime, data in clips
        if MIME.fullmatch(mime) and data
    )
    ref = str(s.get("answer") or "")
    choices = s.get("choices") or []
    listed = " · ".join(f"{chr(65 + k)}. {c}" for k, c in enumerate(choices))
    letter = next((chr(65 + k) for k, c in enumerate(choices) if c == ref), None)
    shown = f"{letter}. {ref}" if letter else ref
    rows = []
    previous: str | None = None
    for c in s.get("completions") or []:
        text = str(c.get("text") or "")
        changed = previous is None or text != previous
        previous = text
        flags = []
        if c.get("error"):
            flags.append(f'<span class="flag err">not generated: {escape(str(c["error"]))}</span>')
        elif not c.get("stopped"):
            flags.append('<span class="flag">no stop token</span>')
        if c.get("template_tokens"):
            flags.append(f'<span class="flag">template tokens: {escape(", ".join(map(str, c["template_tokens"])))}</span>')
        # a free answer is diffed against the reference; a choice letter is not words to align
        body = (escape(text) if choices else diff_html(ref, text)) if text else '<span class="empty">(empty)</span>'
        if not changed:
            body += ' <span class="same">(unchanged)</span>'
        per = c.get("rewards") or {}
        scores = "<br>".join(f"{escape(n)} {escape(_num(per.get(n), 2))}" for n in names)
        step = escape(str(c.get("step", "")))
        rows.append(
            f'<tr class="hyp" data-step="{step}" data-changed="{int(changed)}" data-flagged="{int(bool(flags))}">'
            f'<td class="step">step {step}</td><td class="txt">{body} {"".join(flags)}</td>'
            f'<td class="score"><b>reward {escape(_num(c.get("reward"), 2))}</b><br>{scores}</td></tr>'
        )
    table = f'<table class="hyps"><tbody>{"".join(rows)}</tbody></table>' if rows else '<p class="empty">Not sampled yet.</p>'
    key = escape(json.dumps(s.get("key")))
    return (
        f'<article class="sample" data-key="{key}"><h3>{escape(str(s.get("id") or "record " + str(s.get("key"))))} '
        f"<span>{escape(info)}</span></h3>"
        + (f'<div class="players">{players}</div>' if players else "")
        + f'<p class="ask"><span class="label">prompt</span>{escape(str(s.get("prompt") or ""))}</p>'
        + (f'<p class="ref"><span class="label">choices</span>{escape(listed)}</p>' if listed else "")
        + f'<p class="ref"><span class="label">answer</span>{escape(shown)}</p>{table}</article>'
    )
