"""Which record broke step N: catch a bad micro-batch, find the records that broke it, quarantine them,
then skip the micro-batch (``on_bad_batch: skip``, the default) or stop the run (``stop``).

The faults caught, on every rank and every micro-batch:

- ``data``: encoding an example or collating the micro-batch raised (in the data loader). The loader's
  dataset and collator are wrapped (:class:`SafeRows`, :class:`SafeCollator`): the exception becomes a
  marker batch naming the micro-batch's records and the culprits, found there by encoding and collating
  each record alone; the marker reaches ``training_step`` like any batch, so every rank still steps;
- ``nonfinite_loss``: the forward pass gave a NaN or infinite loss;
- ``oom``: out of memory (``torch.OutOfMemoryError``, or a ``RuntimeError`` saying "out of memory") in
  the forward or the backward pass;
- ``nonfinite_grad``: the step's gradient norm before clipping is NaN or infinite although every loss was
  finite: the optimizer step is dropped (its gradients discarded) and the records of all the step's
  micro-batches on each rank are tried one by one, forward and backward.

For a micro-batch that fails, the rank it failed on writes ``quarantine/step-N-rank-R-micro-M.json``
(its rows and record ids: ``audiodata train replay --step N`` rebuilds it from those and the run's
``run_config.json``), re-runs its records one by one (forward only for a non-finite loss; forward and
backward for gradient faults and out of memory) on the unwrapped model, outside any collective and
without touching the accumulated gradients, and appends each record that fails alone to
``quarantine.jsonl``: ``id`` (the record's stable id, the one ``audiodata lint/convert --exclude`` match
on), ``source`` (input file, 0-based index, 1-based line, as the shards record them), ``row`` (the
dataset row), ``kind``, ``reason``, ``step``, ``micro``, ``rank``, ``epoch`` and ``dump``. A fault that
no single record reproduces (the batch as a whole ran out of memory, say) quarantines nothing; the
dump still names the batch. Quarantined rows are left out of later micro-batches (counted as dropped).

Several processes: every rank must take the same decision or the others hang in the next collective.
Before each forward, the ranks sum a "my batch is a marker" flag; after it, a "my loss is bad" flag
(two all-reduces of one number per micro-batch, only with several processes); at the optimizer step, a
"drop this step" flag. When any rank flags, every rank skips: a skipped micro-batch adds no gradient
and nothing to the logged loss (null in batches.jsonl; a logging window of skipped micro-batches only
logs no loss at all), and when it was the micro-batch that synchronises the step's gradients, the ranks
average them themselves (DDP). What cannot be skipped with several processes: out of memory in the
forward pass (the other ranks are inside TRL's metric all-gathers of that forward) or in the backward
pass of a synchronising micro-batch (they are inside DDP's all-reduce): the batch is dumped and
quarantined, and the run stops with an error naming both (torchrun ends the other ranks). Out of
memory in the backward pass of another micro-batch drops the step on every rank. Under DeepSpeed or
FSDP no fault is skipped (their engines own the backward pass): the batch is dumped and quarantined
and the run stops.

The skip moves nothing else: the learning-rate schedule and the step count go on, and the loss of the
step's other micro-batches keeps transformers' normalisation (the skipped one's label tokens still
count in ``num_items_in_batch``).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from audiodata.faults import MachineFault, is_os_fault
from trainer import dist
from trainer.data import BATCH_META, META_ID, META_REPEAT, META_ROW
from trainer.faultinject import FaultPlan, from_env
from trainer.labels import IGNORE

ON_BAD_BATCH = ("skip", "stop")
QUARANTINE = "quarantine.jsonl"
DUMPS = "quarantine"  # the folder of micro-batch dumps
RUN_CONFIG = "run_config.json"  # the run's TrainConfig and process count, for `audiodata train replay`
FAULT = "__fault"  # an example that could not be encoded (SafeRows -> SafeCollator)
Fault = dict[str, Any]  # kind, reason, culprits (record ids), dump: what batches.jsonl says about a skipped micro-batch


class UnskippableFault(RuntimeError):
    """A bad micro-batch this rank cannot skip without leaving the other ranks waiting (see the module docstring)."""


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, UnskippableFault):
        return False
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _machine(exc: BaseException) -> bool:
    """The machine failed (a disk, a file), not a record: never quarantined, always raised."""
    return isinstance(exc, MachineFault) or is_os_fault(exc)


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class RecordIndex:
    """A dataset row's record id and source location, read from the rows' ``id``/``source`` columns on demand."""

    def __init__(self, rows: Any) -> None:
        cols = [c for c in ("id", "source") if c in getattr(rows, "column_names", [])]
        self.meta = rows.select_columns(cols) if cols else None

    def __call__(self, row: int) -> dict[str, Any]:
        if self.meta is None:
            return {"id": None, "source": None}
        found = self.meta[int(row)]
        rid = found.get("id")
        return {"id": None if rid is None else str(rid), "source": found.get("source")}


# -- the data loader's side ------------------------------------------------------------


class SafeRows:
    """The planned rows (:class:`trainer.data.PlannedRows`) as the data loader fetches them; an example whose
    encoding raises becomes a :data:`FAULT` item naming its row and record instead of ending the run."""

    def __init__(self, planned: Any, index: RecordIndex, plan: FaultPlan | None = None) -> None:
        self.planned, self.index, self.plan = planned, index, plan

    def __len__(self) -> int:
        return len(self.planned)

    def __getitem__(self, key: int) -> dict[str, Any]:
        return self.__getitems__([key])[0]

    def fetch(self, keys: list[int]) -> list[dict[str, Any]]:
        items = self.planned.__getitems__(keys)
        return self.plan.fetched(items) if self.plan is not None else items

    def __getitems__(self, keys: list[int]) -> list[dict[str, Any]]:
        try:
            return self.fetch(keys)
        except Exception as exc:
            if _machine(exc):
                raise
        out: list[dict[str, Any]] = []
        for k in keys:
            try:
                out += self.fetch([k])
            except Exception as exc:
                if _machine(exc):
                    raise
                row = self.row_of(k)
                item = {FAULT: f"encoding it raised {_why(exc)}", META_ROW: row, META_ID: self.index(row)["id"]}
                out.append({**item, META_REPEAT: k >= len(self.planned.rows)})
        return out

    def row_of(self, key: int) -> int:
        n = len(self.planned.rows)
        return key if key < n else self.planned.repeats[key - n]


class SafeCollator:
    """The collator as the data loader calls it: a micro-batch it cannot build becomes a marker batch.

    The marker holds only ``BATCH_META`` (rows, ids, and ``fault``: kind, reason, culprits), plus an empty
    ``labels`` for SFT so transformers' token count over the step's micro-batches still works. Records
    already quarantined are left out of the micro-batches they come back in (``dropped`` in the meta).
    """

    def __init__(self, collator: Any, labels: bool, quarantined: set[int], plan: FaultPlan | None = None) -> None:
        self.inner = plan.wrap_collator(collator) if plan is not None else collator
        self.labels, self.quarantined = labels, quarantined

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        metas = [(e.get(META_ROW), e.get(META_ID), bool(e.get(META_REPEAT, False))) for e in examples]
        kept = [(m, e) for m, e in zip(metas, examples, strict=True) if m[0] not in self.quarantined]
        if not kept:
            return self.marker(metas, "quarantined", "every record of the micro-batch is quarantined already", [])
        bad = [_culprit(m, e[FAULT]) for m, e in kept if FAULT in e]
        if bad:
            return self.marker(metas, "data", "encoding an example raised", bad)
        try:
            batch = self.inner([dict(e) for _, e in kept])
        except Exception as exc:
            if _machine(exc):
                raise
            culprits = []
            for m, e in kept:
                try:
                    self.inner([dict(e)])
                except Exception as one:
                    if _machine(one):
                        raise
                    culprits.append(_culprit(m, f"collating it alone raised {_why(one)}"))
            return self.marker(metas, "data", f"the collator raised {_why(exc)}", culprits)
        dropped = [m[1] for m in metas if m[0] in self.quarantined]
        if dropped and BATCH_META in batch:
            batch[BATCH_META]["dropped"] = dropped
        return batch

    def marker(self, metas: list[tuple[Any, ...]], kind: str, reason: str, culprits: list[dict[str, Any]]) -> dict[str, Any]:
        meta = {
            "rows": [m[0] for m in metas],
            "ids": [m[1] for m in metas],
            "repeat": [m[2] for m in metas],
            "dummy_audio": False,
            "fault": {"kind": kind, "reason": reason, "culprits": culprits},
        }
        batch: dict[str, Any] = {BATCH_META: meta}
        if self.labels:
            batch["labels"] = torch.full((1, 1), IGNORE)
        return batch


def _culprit(meta: tuple[Any, ...], reason: str) -> dict[str, Any]:
    return {"row": meta[0], "id": meta[1], "reason": reason}


# -- the trainer's side -----------------------------------------------------------------


class BatchGuard(TrainerCallback):
    """Per run: decides (with the other ranks) what happens to a failing micro-batch, finds and quarantines
    its culprits, counts what was skipped. A callback only to refresh the quarantined rows every epoch."""

    def __init__(self, trainer: Any, cfg: Any, raw_rows: Any, rank: int, world: int) -> None:
        self.on_bad_batch = cfg.on_bad_batch
        self.out = Path(cfg.output_dir)
        self.rank, self.world = rank, world
        self.cfg = cfg
        self.index = RecordIndex(raw_rows)
        self.plan = from_env()
        self.rows = SafeRows(trainer.planned_rows, self.index, self.plan)
        self.collator = self.plan.wrap_collator(trainer.data_collator) if self.plan else trainer.data_collator
        self.labels = cfg.task == "sft"
        self.quarantined: set[int] = set()
        self.window: list[dict[str, Any]] = []  # this rank's micro-batch metas of the current optimizer step
        self.drop_step: str | None = None  # why this rank's step must not be applied (backward out of memory)
        self.pending: dict[str, Any] | None = None  # what compute_loss agreed on for the micro-batch in flight
        self.current_ids: list[str | None] = []
        self.in_step = self.searching = False
        self.skipped_micro = self.skipped_steps = self.dropped_rows = 0
        self.trained_since_log = 0  # micro-batches trained since transformers last logged a loss
        self.window_trained = 0  # micro-batches of the current optimizer step that trained (the same count on every rank)
        self.stopped: dict[str, Any] | None = None

    # -- the run's files ---------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.out / QUARANTINE

    def start(self, resumed_step: int | None, dummy_audio: bool) -> None:
        """Rank 0 saves the run's config (for replay) and starts quarantine.jsonl anew, or cuts it back to
        ``resumed_step`` on a resume (as batches.jsonl); every rank then reads the rows quarantined so far."""
        if self.rank == 0:
            config = {"config": self.cfg.to_dict(), "processes": self.world, "dummy_audio": dummy_audio}
            _atomic(self.out / RUN_CONFIG, json.dumps(config, indent=2, default=str) + "\n")
            kept = [e for e in read_quarantine(self.path) if resumed_step is not None and e.get("step", 0) <= resumed_step]
            _atomic(self.path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept))
        dist.barrier()
        self.reload()

    def reload(self) -> None:
        self.quarantined.update(int(e["row"]) for e in read_quarantine(self.path) if isinstance(e.get("row"), int))

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.reload()  # the rows other ranks quarantined too (data-loader workers copy the set at each epoch)

    def loader_parts(self, dataset: Any, collator: Any) -> tuple[SafeRows, SafeCollator]:
        return SafeRows(dataset, self.index, self.plan), SafeCollator(collator, self.labels, self.quarantined, self.plan)

    # -- one micro-batch ------------------------------------------------------------------
    def step(self, trainer: Any, model: Any, meta: dict[str, Any] | None, call: Any) -> tuple[torch.Tensor, Fault | None]:
        """Run ``call`` (transformers' forward and backward) unless this micro-batch, or another rank's, fails.
        Returns the loss (0 when skipped) and, when skipped, what happened (for batches.jsonl)."""
        meta = meta or {}
        micro = len(self.window)
        self.window.append(meta)
        data_fault = meta.get("fault")
        if meta.get("dropped"):
            self.dropped_rows += len(meta["dropped"])
        if self.agree(trainer, data_fault is not None):
            if data_fault is None:
                fault = _PEER
            elif data_fault["kind"] == "quarantined":  # nothing new: its records are in quarantine.jsonl already
                fault = {k: data_fault[k] for k in ("kind", "reason")}
            else:
                fault = self.record(trainer, model, micro, [meta], data_fault)
            self.skipped(trainer, model, fault)
            return self.zero(trainer), fault
        self.current_ids, self.pending, self.in_step = list(meta.get("ids") or []), None, True
        oom = None
        try:
            loss = call()
        except Exception as exc:
            if not is_oom(exc):
                raise
            oom = {"kind": "oom", "reason": f"out of memory in the backward pass ({_why(exc)})"}
        finally:
            self.current_ids, self.in_step = [], False
        if oom is not None:
            return self.backward_oom(trainer, model, micro, meta, oom)
        if self.pending is not None:
            fault, self.pending = self.pending, None
            if fault is not _PEER:
                fault = self.record(trainer, model, micro, [meta], fault, search=True, grads=False)
            self.skipped(trainer, model, fault)
            return self.zero(trainer), fault
        self.trained_since_log += 1
        self.window_trained += 1
        return loss, None

    def loss(self, trainer: Any, model: Any, compute: Any) -> torch.Tensor:
        """The guarded ``compute_loss``: the forward pass, then (with the other ranks) keep its loss or skip."""
        fault = None
        try:
            if self.plan is not None:
                self.plan.before_forward(self.current_ids)
            loss = compute()
            if self.plan is not None:
                loss = self.plan.after_forward(self.current_ids, loss, model)
        except Exception as exc:
            if not is_oom(exc) or self.searching:  # searching: the caller counts it against the record
                raise
            fault = {"kind": "oom", "reason": f"out of memory in the forward pass ({_why(exc)})"}
        if self.searching:
            return loss
        if fault is not None and self.world > 1:
            self.unskippable(trainer, model, fault, "the other ranks are inside TRL's metric all-gathers of this forward pass")
        if fault is None and not bool(torch.isfinite(loss.detach()).all()):
            fault = {"kind": "nonfinite_loss", "reason": f"the loss is {float(loss.detach().float().mean())}"}
        if fault is not None:
            loss = None
            _free_memory()
        if not self.agree(trainer, fault is not None):
            return loss
        self.pending = fault or _PEER
        return self.zero(trainer, requires_grad=True)  # backward on it reaches no parameter

    def backward_oom(self, trainer: Any, model: Any, micro: int, meta: dict[str, Any], oom: dict[str, Any]) -> Any:
        """Out of memory in the backward pass: some gradients of this micro-batch may be in, so the whole
        optimizer step is dropped (agreed with the other ranks at the step's end)."""
        _free_memory()
        if self.world > 1 and trainer.accelerator.sync_gradients:
            self.unskippable(trainer, model, oom, "the other ranks wait inside DDP's gradient all-reduce")
        fault = self.record(trainer, model, micro, [meta], oom, search=True, grads=True)
        self.drop_step = oom["reason"]
        self.skipped_micro += 1
        return self.zero(trainer), fault

    def unskippable(self, trainer: Any, model: Any, fault: dict[str, Any], why: str) -> None:
        """Out of memory where this rank cannot rejoin the others' collectives: dump and quarantine, then stop
        with the error (torchrun ends the other ranks when this one exits)."""
        _free_memory()
        done = self.record(trainer, model, len(self.window) - 1, self.window[-1:], fault, search=True, grads=True)
        named = ", ".join(map(str, done["culprits"])) or "none alone"
        raise UnskippableFault(
            f"rank {self.rank}, step {trainer.state.global_step + 1}: {fault['reason']}; with several processes this "
            f"cannot be skipped ({why}). Batch dumped to {self.out / done['dump']}; culprits: {named} (in {self.path}). "
            "Leave them out (audiodata convert --exclude quarantine.jsonl) or lower per_device_batch_size / max_length."
        )

    def skipped(self, trainer: Any, model: Any, fault: dict[str, Any]) -> None:
        """Every rank skipped this micro-batch: count it, stop if told to, keep the replicas' gradients equal."""
        self.skipped_micro += 1
        self.maybe_stop(trainer, fault)
        if not trainer.accelerator.sync_gradients:
            return
        if self.world > 1 and self.stopped is None:
            self.sync_gradients(trainer, model)
        if getattr(trainer.accelerator, "scaler", None) is not None:  # fp16: the loss scaler's unscale must see gradients
            for p in model.parameters():  # (it asserts it checked some for inf); a step without any is dropped at its end
                if p.requires_grad and p.grad is None:
                    p.grad = torch.zeros_like(p)

    # -- the optimizer step -------------------------------------------------------------------
    def end_window(self, trainer: Any, model: Any, grad_norm: float | None) -> None:
        """At the optimizer step (after clipping, before ``optimizer.step``): log the step's pre-clip gradient
        norm; drop the step (gradients set to None: the optimizer leaves every parameter alone) when it is not
        finite, when a rank's backward ran out of memory, or when the run stops here."""
        bad_grad = grad_norm is not None and not math.isfinite(grad_norm)
        drop = self.drop_step is not None
        if self.world > 1:
            bad, dropped = dist.all_reduce_sum([float(bad_grad), float(drop)], trainer.args.device)
            bad_grad, drop = bad > 0, dropped > 0
        step_fault = None
        if bad_grad:
            fault = {"kind": "nonfinite_grad", "reason": f"the step's gradient norm is {grad_norm}"}
            metas = [m for m in self.window if not m.get("fault")]
            step_fault = self.record(trainer, model, None, metas, fault, search=True, grads=True)
            self.maybe_stop(trainer, step_fault)
        elif drop:
            step_fault = {"kind": "oom", "reason": self.drop_step or "out of memory in another rank's backward pass"}
            self.maybe_stop(trainer, step_fault)
        if bad_grad or drop or self.stopped is not None or self.window_trained == 0:  # no update (not even a zero-gradient one)
            model.zero_grad(set_to_none=True)
            if bad_grad or drop:
                self.skipped_steps += 1
        if trainer.batch_log is not None:
            trainer.batch_log.end_step(grad_norm, step_fault)
        self.window, self.drop_step, self.window_trained = [], None, 0

    def maybe_stop(self, trainer: Any, fault: dict[str, Any]) -> None:
        """``on_bad_batch: stop`` (or DeepSpeed/FSDP, where nothing can be skipped): end the run after this micro-batch.
        The decision depends on the configuration only, so every rank takes it at the same point."""
        if self.on_bad_batch == "skip" and self.can_skip(trainer):
            return
        if self.stopped is None:
            why = "on_bad_batch: stop" if self.on_bad_batch == "stop" else "DeepSpeed/FSDP runs cannot skip a micro-batch"
            self.stopped = {"step": trainer.state.global_step + 1, "kind": fault["kind"], "reason": fault["reason"], "why": why}
            if self.rank == 0:
                msg = f"[audiodata] stopping at step {self.stopped['step']} ({why}); see {self.path}"
                print(msg, file=sys.stderr, flush=True)
        trainer.control.should_training_stop = True

    @staticmethod
    def can_skip(trainer: Any) -> bool:
        kind = trainer.accelerator.distributed_type
        return getattr(kind, "value", str(kind)) not in ("DEEPSPEED", "FSDP")

    def agree(self, trainer: Any, flag: bool) -> bool:
        """Whether any rank raises ``flag`` (a collective with several processes: every rank calls it here)."""
        if self.world == 1:
            return flag
        return dist.all_reduce_sum([float(flag)], trainer.args.device)[0] > 0

    def sync_gradients(self, trainer: Any, model: Any) -> None:
        """The skipped micro-batch was the one whose backward makes DDP average the step's accumulated gradients
        over the ranks: average them here instead (the same numbers DDP would have reduced)."""
        import torch.distributed as td
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        params = [p for p in model.parameters() if p.requires_grad]
        if not dist.all_reduce_sum([float(any(p.grad is not None for p in params))], trainer.args.device)[0]:
            return  # no rank has any gradient in this step
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = _flatten_dense_tensors(grads)
        td.all_reduce(flat)
        flat.div_(self.world)
        for g, averaged in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
            g.copy_(averaged)

    def zero(self, trainer: Any, requires_grad: bool = False) -> torch.Tensor:
        """A skipped micro-batch's loss: it adds nothing to the logged loss (batches.jsonl writes null), and with
        ``requires_grad`` it is a leaf that the backward pass transformers runs on it leaves every parameter alone."""
        return torch.zeros((), device=trainer.args.device, requires_grad=requires_grad)

    # -- finding the culprits -------------------------------------------------------------
    def record(
        self,
        trainer: Any,
        model: Any,
        micro: int | None,
        metas: list[dict[str, Any]],
        fault: dict[str, Any],
        search: bool = False,
        grads: bool = False,
    ) -> dict[str, Any]:
        """Dump the micro-batch(es), find the culprits (given, or by re-running each record alone), quarantine
        them; what batches.jsonl says about the fault."""
        step, epoch = trainer.state.global_step + 1, trainer.batch_sampler.epoch
        culprits = list(fault.get("culprits") or [])
        if search:
            culprits = self.search(trainer, model, metas, grads)
        for c in culprits:
            c.setdefault("source", self.index(c["row"])["source"] if c.get("row") is not None else None)
        dump = self.dump(step, micro, epoch, metas, fault, culprits)
        for c in culprits:
            self.quarantine(c, fault["kind"], step, micro, epoch, dump)
        named = ", ".join(f"{c['id']} ({_where(c.get('source'))})" for c in culprits) or "no single record reproduces it"
        print(
            f"[audiodata] step {step}, rank {self.rank}: {fault['reason']}: {named}; batch dumped to {dump}",
            file=sys.stderr,
            flush=True,
        )
        return {"kind": fault["kind"], "reason": fault["reason"], "culprits": [c["id"] for c in culprits], "dump": dump}

    def search(self, trainer: Any, model: Any, metas: list[dict[str, Any]], grads: bool) -> list[dict[str, Any]]:
        """Each record of ``metas`` alone, on the unwrapped model (no collective, no DDP hook, the accumulated
        gradients untouched, the random state restored): the ones that fail alone."""
        unwrapped = trainer.accelerator.unwrap_model(model)
        params = [p for p in unwrapped.parameters() if p.requires_grad] if grads else []
        found: list[dict[str, Any]] = []
        seen: set[int] = set()
        for meta in metas:
            for row, rid in zip(meta.get("rows") or [], meta.get("ids") or [], strict=False):
                if row is None or row in seen:
                    continue
                seen.add(row)
                why, _ = self.try_one(trainer, unwrapped, row, rid, params)
                if why is not None:
                    found.append({"row": row, "id": rid, "reason": why})
        return found

    def try_one(self, trainer: Any, model: Any, row: int, rid: str | None, params: list[Any]) -> tuple[str | None, float | None]:
        """Encode, collate and run one record: (why it fails alone or None, its loss)."""
        saved = copy.deepcopy(getattr(trainer, "_metrics", None))  # TRL's logged metrics: the search adds none
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        self.searching = True
        try:
            with torch.random.fork_rng(devices=devices), _local_gathers(trainer.accelerator):
                return self._try_one(trainer, model, row, rid, params)
        finally:
            self.searching = False
            if saved is not None:
                trainer._metrics = saved

    def _try_one(self, trainer: Any, model: Any, row: int, rid: str | None, params: list[Any]) -> tuple[str | None, float | None]:
        try:
            batch = self.collator(self.rows.fetch([row]))
        except Exception as exc:
            if _machine(exc):
                raise
            return f"preparing it alone raised {_why(exc)}", None
        batch.pop(BATCH_META, None)
        batch = trainer._prepare_inputs(batch)
        self.current_ids = [rid]
        oom = None
        try:
            with torch.set_grad_enabled(bool(params)):
                loss = trainer.compute_loss(model, batch)
                value = float(loss.detach().float().mean())
                if not math.isfinite(value):
                    return f"non-finite loss ({value}) on this record alone", value
                if params:
                    grads = [g for g in torch.autograd.grad(loss, params, allow_unused=True) if g is not None]
                    norm = float(torch.stack([g.float().norm() for g in grads]).norm()) if grads else 0.0
                    if not math.isfinite(norm):
                        return f"non-finite gradient (norm {norm}) on this record alone", value
            return None, value
        except Exception as exc:
            if not is_oom(exc):
                raise
            oom = f"out of memory on this record alone ({_why(exc)})"
        finally:
            self.current_ids = []
        _free_memory()
        return oom, None

    def quarantine(self, culprit: dict[str, Any], kind: str, step: int, micro: int | None, epoch: int, dump: str) -> None:
        row = culprit.get("row")
        if row is None or row in self.quarantined:
            return
        self.quarantined.add(row)
        found = self.index(row)
        entry = {
            "id": culprit.get("id") or found["id"],
            "source": found["source"],
            "row": row,
            "kind": kind,
            "reason": culprit["reason"],
            "step": step,
            "micro": micro,
            "rank": self.rank,
            "epoch": epoch,
            "dump": dump,
            "time": round(time.time(), 3),
        }
        _append(self.path, entry)

    def dump(
        self, step: int, micro: int | None, epoch: int, metas: list[dict[str, Any]], fault: dict[str, Any], culprits: list[Any]
    ) -> str:
        """``quarantine/step-N-rank-R[-micro-M].json``: what the micro-batch(es) held; the path, relative to the run."""
        name = f"step-{step:06d}-rank-{self.rank}" + (f"-micro-{micro}" if micro is not None else "") + ".json"
        rel = f"{DUMPS}/{name}"
        batches = [{k: m.get(k) for k in ("rows", "ids", "repeat", "dropped") if k in m} for m in metas]
        body = {
            "step": step,
            "micro": micro,
            "epoch": epoch,
            "rank": self.rank,
            "kind": fault["kind"],
            "reason": fault["reason"],
            "micro_batches": batches,
            "culprits": culprits,
            "config": RUN_CONFIG,
            "replay": f"audiodata train replay --step {step} --rank {self.rank} {self.out}",
        }
        (self.out / DUMPS).mkdir(parents=True, exist_ok=True)
        _atomic(self.out / rel, json.dumps(body, indent=2, ensure_ascii=False, default=str) + "\n")
        return rel

    # -- the report -------------------------------------------------------------------------
    def summary(self, device: Any = "cpu") -> dict[str, Any]:
        """For train_report.json (a collective: every rank calls it; the counters are summed over ranks)."""
        micro, dropped = dist.all_reduce_sum([float(self.skipped_micro), float(self.dropped_rows)], device)
        entries = read_quarantine(self.path)
        return {
            "on_bad_batch": self.on_bad_batch,
            "file": QUARANTINE,
            "records": len({e.get("row") for e in entries}),
            "by_kind": dict(Counter(e.get("kind") for e in entries)),
            "examples": [{k: e.get(k) for k in ("id", "source", "kind", "reason", "step", "rank")} for e in entries[:50]],
            "skipped_micro_batches": round(micro),  # summed over ranks: each rank's skipped micro-batch counts
            "skipped_steps": self.skipped_steps,  # optimizer steps dropped (the same on every rank)
            "dropped_rows": round(dropped),  # quarantined records left out of later micro-batches
            "stopped": self.stopped,
        }


#: The fault of a micro-batch skipped because another rank's failed.
_PEER: dict[str, Any] = {"kind": "peer", "reason": "another rank's micro-batch failed here; every rank skips it", "culprits": []}


class GuardHooks:
    """Mixed into the audio trainers (before TRL's): the guarded forward, the step's gradient norm, the log's end."""

    guard: BatchGuard | None = None
    batch_log: Any = None

    def guarded_step(self, model: Any, meta: dict[str, Any] | None, call: Any) -> tuple[torch.Tensor, dict[str, Any] | None]:
        if self.guard is None:
            return call(), None
        return self.guard.step(self, model, meta, call)

    def guarded_loader_parts(self, dataset: Any, collator: Any) -> tuple[Any, Any]:
        return self.guard.loader_parts(dataset, collator) if self.guard is not None else (dataset, collator)

    def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        guard = self.guard
        if guard is None or return_outputs or not (guard.in_step or guard.searching):  # evaluation: as TRL does it
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)  # type: ignore[misc]

        def compute() -> Any:
            return super(GuardHooks, self).compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)  # type: ignore[misc]

        return guard.loss(self, model, compute)

    def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
        norm = super()._get_grad_norm(model, grad_norm=grad_norm)  # type: ignore[misc]
        value = None if norm is None else float(norm)
        if self.guard is not None:
            self.guard.end_window(self, model, value)
        elif self.batch_log is not None:
            self.batch_log.end_step(value)
        return norm

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """A logging window whose every micro-batch was skipped has no loss (transformers would log 0 or a stale
        average for it): the loss is left out of that log line, so loss_history never shows a loss nobody computed."""
        guard = self.guard
        if guard is not None and "loss" in logs and not any(k.startswith("eval_") for k in logs):
            if guard.trained_since_log == 0:
                logs.pop("loss")
            guard.trained_since_log = 0
        super().log(logs, *args, **kwargs)  # type: ignore[misc]

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().train(*args, **kwargs)  # type: ignore[misc]
        finally:
            if self.batch_log is not None:
                self.batch_log.flush()  # a step the run never finished: its lines, grad_norm null


def attach_guard(trainer: Any, cfg: Any, raw_rows: Any) -> BatchGuard:
    """Install the guard on a built trainer (``trainer.train.build``)."""
    rank, world = dist.world()
    guard = BatchGuard(trainer, cfg, raw_rows, rank, world)
    trainer.guard = guard
    trainer.add_callback(guard)
    return guard


def batch_fields(
    fault: Fault | None, meta: dict[str, Any] | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """What this module adds to a batches.jsonl line: the step's label-token count and the micro-batch's fault."""
    items = args[0] if args else kwargs.get("num_items_in_batch")
    out: dict[str, Any] = {"num_items_in_batch": None if items is None else int(items), "fault": fault}
    if meta and meta.get("dropped"):
        out["quarantined_left_out"] = meta["dropped"]
    return out


def read_quarantine(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:  # a torn last line (a kill mid-write): the rest stands
                continue
    return out


@contextlib.contextmanager
def _local_gathers(accelerator: Any) -> Iterator[None]:
    """While one rank re-runs records alone, TRL's metric gathers (``gather``/``gather_for_metrics`` in its
    ``compute_loss``) must not wait for the other ranks: they return this rank's values."""
    accelerator.gather = lambda tensor: tensor
    accelerator.gather_for_metrics = lambda data, *args, **kwargs: data
    try:
        yield
    finally:
        del accelerator.gather, accelerator.gather_for_metrics


def _where(source: Any) -> str:
    if not isinstance(source, dict):
        return "source unknown"
    line = source.get("line")
    return f"{source.get('file')}:{line if line is not None else source.get('index')}"


def _append(path: Path, entry: dict[str, Any]) -> None:
    data = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
