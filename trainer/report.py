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
    """Training loss by step (and eval loss when there is one), for a person to glance at; DPO/KTO runs get a
    second panel with TRL's rewards (chosen, rejected, margin) and the preference accuracy (KTO: the KL term)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    prefs = report.get("preference_history") or []
    if prefs:
        fig, (ax, pax) = plt.subplots(2, 1, figsize=(7, 7), dpi=100, sharex=True)
    else:
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
    if prefs:
        _plot_preference(pax, prefs)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_preference(ax: Any, prefs: list[dict[str, Any]]) -> None:
    marker = "." if len(prefs) < 60 else None
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins"):
        points = [(h["step"], h[key]) for h in prefs if key in h]
        if points:
            ax.plot(*zip(*points, strict=True), marker=marker, label=key.split("/")[1])
    ax.set_xlabel("step")
    ax.set_ylabel("reward (beta * log-ratio)")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    second = "rewards/accuracies" if any("rewards/accuracies" in h for h in prefs) else "kl"
    points = [(h["step"], h[second]) for h in prefs if second in h]
    if points:
        twin = ax.twinx()
        twin.plot(*zip(*points, strict=True), color="black", linestyle="--", marker=marker, label=second.split("/")[-1])
        twin.set_ylabel("accuracy" if second != "kl" else "KL estimate")
        if second != "kl":
            twin.set_ylim(-0.05, 1.05)
        twin.legend(loc="upper right")


#: TRL's preference metrics (DPOTrainer and KTOTrainer ``_metrics``), as logged at each logging step.
PREFERENCE_KEYS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
    "kl",
)


def preference_history(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """The rewards, margins and accuracies (KTO: KL) TRL logged, per logging step, and their last values."""
    hist = []
    for entry in log_history:
        if "loss" not in entry:
            continue
        found = {k: entry[k] for k in PREFERENCE_KEYS if k in entry}
        if found:
            hist.append({"step": entry["step"], **found})
    return {"preference_history": hist, "final_preference": hist[-1] if hist else None}
