"""The training report: ``train_report.json`` and the loss curve as ``loss_curve.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(report: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "train_report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    plot_loss(report, out / "loss_curve.png")
    return path


def plot_loss(report: dict[str, Any], path: Path) -> Path:
    """Training loss by step (and eval loss when there is one), for a person to glance at."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    hist = report.get("loss_history") or []
    if hist:
        ax.plot([h["step"] for h in hist], [h["loss"] for h in hist], marker="." if len(hist) < 60 else None, label="train loss")
    evals = report.get("eval_history") or []
    if evals:
        ax.plot([h["step"] for h in evals], [h["eval_loss"] for h in evals], marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{report.get('task', '').upper()} {report.get('family', '')}: {report.get('steps', 0)} steps")
    ax.grid(alpha=0.3)
    if hist or evals:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no loss logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
