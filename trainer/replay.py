"""``audiodata train replay --step N [--rank R] OUTPUT_DIR``: rebuild a logged micro-batch and run it again.

From the run's ``batches.jsonl`` (the rows of step N on rank R) and ``run_config.json`` (the run's
TrainConfig, saved when it started), in one process, without writing into the run's folder: the
trainer is built as the run built it, the rows are encoded and collated again, and each micro-batch of
that step on that rank goes through forward and backward as transformers' ``training_step`` ran it
(the same label-token count ``num_items_in_batch``, the same gradient-accumulation scaling). Printed:
the record ids (checked against the log), the logged loss and the replayed one, the micro-batch's
own gradient norm before clipping, and each record's loss alone (and why it fails alone, if it does).

The weights: step N ran on the weights after step N-1, so ``checkpoint-(N-1)`` is used when the run
saved it; step 1 (or a run with no checkpoint before N) runs on the initial weights, which ``build``
recreates from the run's seed. Otherwise the nearest earlier checkpoint is used and the replayed loss
is not the logged one (said so). Two things make a replay differ from the logged numbers by design:
dropout (``lora_dropout`` > 0 draws other masks) and several processes (the logged gradient norm is
the step's, over all micro-batches and ranks; the replayed one is this micro-batch's alone).

Exit codes: 0 replayed, every loss and gradient finite; 1 replayed and the micro-batch fails (a non-finite
loss or gradient, out of memory, an encoding or collator error: the per-record table says which record);
2 usage (no such step or rank in batches.jsonl, no run config, a damaged or missing dataset).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, TrainConfig

# torch, transformers and the trainer's modules load inside the functions: `audiodata --help` builds this parser


class ReplayError(ConfigError):
    """The replay cannot start (exit 2): the message says what is missing."""


@dataclass
class MicroReplay:
    micro: int
    ids: list[str | None]
    logged_ids: list[str | None]
    logged_loss: float | None
    loss: float | None = None
    grad_norm: float | None = None
    logged_grad_norm: float | None = None
    fault: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # id, row, loss alone, fault alone

    @property
    def ok(self) -> bool:
        return self.fault is None and all(r["fault"] is None for r in self.records)


@dataclass
class ReplayResult:
    step: int
    rank: int
    weights: str
    notes: list[str]
    micro_batches: list[MicroReplay]

    @property
    def exit_code(self) -> int:
        return 0 if all(m.ok for m in self.micro_batches) else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rank": self.rank,
            "weights": self.weights,
            "notes": self.notes,
            "micro_batches": [m.__dict__ for m in self.micro_batches],
            "exit_code": self.exit_code,
        }


def run_config(output_dir: Path) -> dict[str, Any]:
    """The run's saved configuration (run_config.json; a finished run's train_report.json also has it)."""
    from trainer.quarantine import RUN_CONFIG
    saved = output_dir / RUN_CONFIG
    if saved.is_file():
        return json.loads(saved.read_text(encoding="utf-8"))
    report = output_dir / "train_report.json"
    if report.is_file():
        data = json.loads(report.read_text(encoding="utf-8"))
        return {"config": data["config"], "processes": data.get("processes", 1), "dummy_audio": None}
    raise ReplayError(f"{output_dir}: no {RUN_CONFIG} (nor train_report.json): not the output folder of an audiodata train run")


def logged_lines(output_dir: Path, step: int, rank: int, micro: int | None) -> list[dict[str, Any]]:
    from trainer.batchlog import BATCH_LOG, read_batch_log
    log = read_batch_log(output_dir / BATCH_LOG)
    if not log:
        raise ReplayError(f"{output_dir}: no {BATCH_LOG} (the run had log_batches off, or never reached step 1)")
    lines = [e for e in log if e["step"] == step and e["rank"] == rank and (micro is None or e["micro"] == micro)]
    if not lines:
        steps = sorted({e["step"] for e in log})
        ranks = sorted({e["rank"] for e in log})
        raise ReplayError(
            f"{BATCH_LOG} has no step {step}" + (f" micro {micro}" if micro is not None else "") + f" on rank {rank} "
            f"(steps {steps[0]}..{steps[-1]}, ranks {', '.join(map(str, ranks))})"
        )
    return sorted(lines, key=lambda e: e["micro"])


def weights_for(output_dir: Path, step: int, checkpoint: str | None) -> tuple[str | None, list[str]]:
    """The checkpoint to load (None: the initial weights) and what to say about it."""
    if checkpoint is not None:
        if not Path(checkpoint).is_dir():
            raise ReplayError(f"--checkpoint {checkpoint}: no such folder")
        return checkpoint, []
    found = {int(p.name.rsplit("-", 1)[-1]): p for p in output_dir.glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()}
    if step - 1 in found:
        return str(found[step - 1]), []
    if step == 1:
        return None, []
    earlier = [k for k in found if k < step - 1]
    if earlier:
        k = max(earlier)
        return str(found[k]), [f"no checkpoint-{step - 1}: weights of checkpoint-{k}, so the loss is not the logged one"]
    return None, [f"no checkpoint before step {step}: initial weights, so the loss is not the logged one"]


def replay(
    output_dir: str | Path, step: int, rank: int = 0, micro: int | None = None, checkpoint: str | None = None
) -> ReplayResult:
    """Rebuild and run the logged micro-batch(es) of ``step`` on ``rank`` (see the module docstring)."""
    from trainer import dist
    from trainer.quarantine import RUN_CONFIG

    out = Path(output_dir)
    if dist.world()[1] > 1:
        raise ReplayError("replay runs in one process: start it without torchrun/accelerate launch")
    saved = run_config(out)
    lines = logged_lines(out, step, rank, micro)
    weights, notes = weights_for(out, step, checkpoint)
    processes = int(saved.get("processes") or 1)
    values = dict(saved["config"])
    dummy = saved.get("dummy_audio")
    with tempfile.TemporaryDirectory(prefix="audiodata-replay-") as tmp:
        values.update(output_dir=tmp, resume=None, log_batches=False, report_to="none", dataloader_num_workers=0)
        if dummy is not None:
            values["dummy_audio"] = dummy  # as the run collated (several processes: on by default)
        cfg = TrainConfig.from_dict(values, source=str(out / RUN_CONFIG))
        if cfg.lora_dropout > 0:
            notes.append(f"lora_dropout {cfg.lora_dropout}: dropout draws other masks than the run did; losses differ by that")
        if processes > 1:
            notes.append(f"the run had {processes} processes: the logged grad_norm is the step's over all ranks")
        return _replay(cfg, lines, step, rank, weights, notes, processes)


def _replay(
    cfg: TrainConfig, lines: list[dict[str, Any]], step: int, rank: int, weights: str | None, notes: list[str], processes: int
) -> ReplayResult:
    from transformers import set_seed

    from trainer.data import BATCH_META
    from trainer.quarantine import _machine, _why
    from trainer.train import build

    set_seed(cfg.seed)
    run = build(cfg)
    trainer, guard = run.trainer, run.trainer.guard
    if weights is not None:
        trainer._load_from_checkpoint(weights)
    model = trainer.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    result = ReplayResult(step, rank, weights or "initial (the run's seed)", notes, [])
    for line in lines:
        m = MicroReplay(line["micro"], [], line["ids"], line["loss"], logged_grad_norm=line.get("grad_norm"))
        result.micro_batches.append(m)
        rows = line["rows"]
        try:
            batch = guard.collator(guard.rows.fetch(rows))
        except Exception as exc:
            if _machine(exc):
                raise
            m.fault = f"preparing the micro-batch raised {_why(exc)}"
            batch = None
        if batch is not None:
            m.ids = list((batch.pop(BATCH_META, None) or {}).get("ids") or [])
            _forward_backward(trainer, guard, model, params, batch, line, processes, m)
        else:
            m.ids = list(line["ids"])
        for row, rid in zip(rows, line["ids"], strict=False):
            why, loss = guard.try_one(trainer, model, row, rid, params)
            m.records.append({"id": rid, "row": row, "loss": loss, "fault": why})
    return result


def _forward_backward(
    trainer: Any, guard: Any, model: Any, params: list[Any], batch: dict[str, Any], line: dict[str, Any], processes: int,
    m: MicroReplay,
) -> None:
    """transformers' training_step on the rebuilt batch, as the run called it; the micro-batch's pre-clip grad norm."""
    import torch

    from trainer.quarantine import _why, is_oom
    from trainer.train import _AudioTrainerMixin

    items = line.get("num_items_in_batch")
    num_items = None if items is None else torch.tensor(items, device=trainer.args.device)
    trainer.current_gradient_accumulation_steps = int(line.get("step_micro_batches") or 1)
    model.zero_grad(set_to_none=True)
    guard.searching, guard.current_ids = True, list(m.ids)  # the guard's test-fault hook applies; nothing is skipped
    oom = None
    try:
        loss = super(_AudioTrainerMixin, trainer).training_step(model, trainer._prepare_inputs(batch), num_items)
        scale = processes if num_items is not None and trainer.args.average_tokens_across_devices else 1
        m.loss = float(loss) * scale  # the run's loss was scaled by its process count (tokens averaged across ranks)
    except Exception as exc:
        if not is_oom(exc):
            raise
        oom = f"out of memory ({_why(exc)})"
    finally:
        guard.searching, guard.current_ids = False, []
    if oom is not None:
        m.fault = oom
        return
    grads = [p.grad.float().norm() for p in params if p.grad is not None]
    m.grad_norm = float(torch.stack(grads).norm()) if grads else 0.0
    model.zero_grad(set_to_none=True)
    if m.loss is None or not math.isfinite(m.loss):
        m.fault = f"non-finite loss ({m.loss})"
    elif not math.isfinite(m.grad_norm):
        m.fault = f"non-finite gradient (norm {m.grad_norm})"


def print_replay(result: ReplayResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]replay of step {result.step}, rank {result.rank}[/] (weights: {result.weights})", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for m in result.micro_batches:
        t = Table(title=f"micro-batch {m.micro}", show_header=False)
        t.add_column(style="bold")
        t.add_column(overflow="fold")
        same = "same as logged" if m.ids == m.logged_ids else f"[red]logged: {', '.join(map(str, m.logged_ids))}[/]"
        t.add_row("records", f"{', '.join(map(str, m.ids))} ({same})")
        t.add_row("loss (logged -> replayed)", f"{_num(m.logged_loss)} -> {_num(m.loss)}")
        t.add_row("grad norm (this micro-batch; the step's logged)", f"{_num(m.grad_norm)}; {_num(m.logged_grad_norm)}")
        t.add_row("fault", f"[red]{m.fault}[/]" if m.fault else "none")
        console.print(t)
        r = Table(title="each record alone")
        for col in ("record", "row", "loss", "fault"):
            r.add_column(col, overflow="fold")
        for rec in m.records:
            r.add_row(str(rec["id"]), str(rec["row"]), _num(rec["loss"]), f"[red]{rec['fault']}[/]" if rec["fault"] else "")
        console.print(r)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


# -- the command line (parser and summary rows live here: trainer/cli.py only wires them in) ----------


def add_replay_parser(tsub: Any) -> None:
    r = tsub.add_parser(
        "replay",
        help="rebuild the micro-batch a run logged at step N and run it again: loss, grad norm, each record's loss",
        description="Rebuild the micro-batch(es) of step N on rank R from OUTPUT_DIR/batches.jsonl and the run's config, "
        "and run forward and backward on them again, in one process.",
        epilog="exit codes: 0 replayed and finite, 1 replayed and the micro-batch fails (the per-record table says which "
        "record), 2 no such step/rank, no run config, or the dataset is gone",
    )
    r.add_argument("output_dir", metavar="OUTPUT_DIR", help="the run's output folder (batches.jsonl, run_config.json)")
    r.add_argument("--step", type=int, required=True, help="the optimizer step, 1-based as in the logs")
    r.add_argument("--rank", type=int, default=0, help="the rank whose micro-batch to rebuild (default 0)")
    r.add_argument("--micro", type=int, help="one gradient-accumulation micro-batch of the step (default: all of them)")
    r.add_argument("--checkpoint", help="weights to run on (default: OUTPUT_DIR/checkpoint-(N-1), or the initial ones)")
    r.add_argument("--json", action="store_true", help="print the result as JSON")


def cmd_replay(args: Any) -> int:
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        result = replay(args.output_dir, args.step, args.rank, args.micro, args.checkpoint)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print_replay(result)
    return result.exit_code


def quarantine_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The train summary's rows about bad micro-batches (none when nothing happened)."""
    q = report.get("quarantine") or {}
    rows = []
    if q.get("records"):
        rows.append(("quarantined records", f"{q['records']} ({q['file']})"))
    if q.get("skipped_micro_batches"):
        rows.append(("skipped micro-batches (all ranks)", str(q["skipped_micro_batches"])))
    if q.get("skipped_steps"):
        rows.append(("dropped optimizer steps", str(q["skipped_steps"])))
    if q.get("dropped_rows"):
        rows.append(("quarantined rows left out later", str(q["dropped_rows"])))
    if q.get("stopped"):
        rows.append(("stopped at step", f"{q['stopped']['step']} ({q['stopped']['kind']})"))
    return rows
