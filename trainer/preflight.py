"""Pre-flight of a training run: ``audiodata train sft|dpo|kto --dry-run``, and the same checks before step 1 of every run
(GRPO's own: trainer/grpo_preflight.py).

The commonest ways a training job dies (a processor or library version mismatch, running out of
memory, audio placeholders that do not match the features) show hours in, after a GPU was queued;
the quietest (a model that never hears its audio) shows only at evaluation. This module finds them in
seconds, on the machine that will train, with the objects the run itself uses (``trainer.train.build``):

``versions``      the libraries the family and the options need (:mod:`trainer.versions`) against what is installed
``loading``       model config, processor and tokenizer load, and agree (audio token id, vocabulary, mel bins, rate)
``build``         (dry run) data, batch plan, model and trainer are assembled as a real run assembles them
``batches``       the longest batches of the sampler's plan encoded and collated by the run's own collator
                  (its per-batch label check included)
``audio_tokens``  per record: the placeholders in the text, what the features expand to
                  (``Family.audio_token_counts``) and what lint and the batch plan counted from the stored durations
``memory``        the estimate per device (:mod:`trainer.memory`) against the device's memory
``step``          one forward and backward of the longest batch through the trainer's own ``compute_loss``
                  (always in a dry run; in a real run for models under 1e9 parameters, since step 1 is that
                  batch anyway: the sampler puts the longest first)
``hearing``       does the model hear the audio? (:mod:`trainer.hearing`), skipped by ``preflight_audio_check: false``

Each check is ``ok``, ``warn``, ``fail`` or ``skip`` (``fault``: the machine failed, e.g. a CUDA error).
The result is a table on the terminal and ``preflight.json`` in the output folder (versions, platform,
config summary, every check: a report to paste into an issue). A dry run trains nothing and writes no
checkpoint; it exits 0 when nothing failed, 2 on a failing check, 3 on a fault of the machine. A real
run stops before step 1 with exit 2 on a failing check. After training, the hearing comparison runs
again on held-out records (the eval split, else training records the run did not reach) and goes into
``train_report.json`` next to the same comparison before training.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import platform
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiodata.faults import is_os_fault, write_atomic
from trainer.config import ConfigError, TrainConfig

PREFLIGHT_FILE = "preflight.json"
TITLES = {
    "versions": "library versions",
    "loading": "model config, processor, tokenizer",
    "build": "data, batch plan, model, trainer",
    "batches": "longest batches, encoded and collated",
    "audio_tokens": "audio tokens: text, features, lint",
    "memory": "memory per device",
    "step": "one forward and backward",
    "hearing": "does the model hear the audio?",
    "prompts": "longest prompts, rendered with their audio",  # GRPO (trainer/grpo_preflight.py)
    "rollout": "one GRPO step: generate, reward, backward",
}
#: The checks of each kind of run, in order (a check not reached is listed as skipped).
SFT_CHECKS = ("versions", "loading", "build", "batches", "audio_tokens", "memory", "step", "hearing")
GRPO_CHECKS = ("versions", "loading", "build", "prompts", "audio_tokens", "memory", "rollout", "hearing")
#: A real run does the forward and backward only for models this small (bigger ones: step 1 is that batch).
STEP_PARAMS_LIMIT = 1e9
#: Batches of the plan the checks encode: the most padded tokens, the longest row, the most clips.
EXIT_OK, EXIT_FAIL, EXIT_FAULT = 0, 2, 3


class PreflightFailed(ConfigError):
    """A pre-flight check failed before step 1: the run stops (exit 2) with the checks named."""


@dataclass
class Check:
    name: str
    status: str = "skip"
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: BaseException | None = field(default=None, repr=False)

    @property
    def title(self) -> str:
        return TITLES[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": self.status, "detail": self.detail,
                "seconds": round(self.seconds, 3), "data": self.data}  # fmt: skip


@dataclass
class Preflight:
    """The checks of one run, in order, and what later checks (and the report after training) need."""

    cfg: TrainConfig
    dry_run: bool
    checks: list[Check] = field(default_factory=list)
    template: dict[str, Any] | None = None  # one record's rendered chat template
    collated: list[dict[str, Any]] = field(default_factory=list)  # the longest batches, collated
    examples: list[dict[str, Any]] = field(default_factory=list)  # their encoded examples (before collation)
    held_out: dict[str, Any] | None = None  # records for the hearing comparison after training, and "before"
    params: float | None = None
    started: float = field(default_factory=time.time)
    order: tuple[str, ...] = SFT_CHECKS

    # -- running checks ----------------------------------------------------------------
    def run(self, name: str, fn: Any) -> Check:
        """Run one check; ``fn`` returns (status, detail, data). A fault of the disk propagates (exit 3)."""
        c = Check(name)
        t = time.time()
        try:
            c.status, c.detail, c.data = fn()
        except Exception as exc:
            if is_os_fault(exc):
                raise
            c.status, c.detail = _classify(exc)
            c.error = exc
        c.seconds = time.time() - t
        self.checks.append(c)
        return c

    def skip(self, name: str, why: str) -> None:
        self.checks.append(Check(name, "skip", why))

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def exit_code(self) -> int:
        if any(c.status == "fault" for c in self.checks):
            return EXIT_FAULT
        return EXIT_FAIL if any(c.status == "fail" for c in self.checks) else EXIT_OK

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status in ("fail", "fault")]

    # -- the report ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        versions = self.get("versions")
        return {
            "preflight": 1,
            "ok": self.exit_code == EXIT_OK,
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "task": self.cfg.task,
            "platform": platform_info(),
            "versions": versions.data if versions else {},
            "config": config_summary(self.cfg),
            "checks": [c.to_dict() for c in self.checks],
            "template": self.template,
            "seconds": round(time.time() - self.started, 2),
        }

    def summary(self) -> dict[str, Any]:
        """What ``train_report.json`` keeps of it."""
        checks = {c.name: {"status": c.status, "detail": c.detail} for c in self.checks}
        return {"ok": self.exit_code == EXIT_OK, "checks": checks}

    def write(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from audiodata.faults import MachineFault

            raise MachineFault("create", out, exc) from exc
        path = out / PREFLIGHT_FILE
        write_atomic(path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path

    def print_table(self, file: Any = None) -> None:
        from rich.console import Console
        from rich.table import Table

        console = Console(file=file or sys.stderr, width=max(100, Console(file=file or sys.stderr).width))
        mode = "dry run" if self.dry_run else "before step 1"
        t = Table(title=f"pre-flight ({mode}): audiodata train {self.cfg.task} {self.cfg.model}", show_lines=False)
        t.add_column("check", style="bold", no_wrap=True)
        t.add_column("status", no_wrap=True)
        t.add_column("detail", overflow="fold")
        style = {"ok": "green", "warn": "yellow", "fail": "bold red", "fault": "bold red", "skip": "dim"}
        for c in self.checks:
            t.add_row(c.title, f"[{style[c.status]}]{c.status}[/]", _escape(c.detail))
        console.print(t)
        hearing = self.get("hearing")
        if hearing is not None and hearing.status == "fail":
            versions = self.get("versions")
            if versions:
                listed = ", ".join(f"{k} {v['installed']}" for k, v in versions.data.items() if v.get("installed"))
                console.print(f"library versions: {_escape(listed)}")
            if self.template:
                console.print(f"rendered chat template of record {self.template.get('record')!r}:")
                console.print(self.template.get("rendered", ""), markup=False, highlight=False)
        verdict = {EXIT_OK: "[green]ready to train[/]", EXIT_FAIL: "[bold red]not ready: fix the failing checks[/]",
                   EXIT_FAULT: "[bold red]the machine failed a check[/]"}[self.exit_code]  # fmt: skip
        console.print(f"{verdict} ({time.time() - self.started:.1f} s)")


# -- entry points ---------------------------------------------------------------------------
def dry_run(cfg: TrainConfig) -> Preflight:
    """``--dry-run``: every check, nothing trained; later checks are skipped when what they need failed."""
    from trainer import dist

    if cfg.task == "grpo":  # its own checks of prompts and a rollout (trainer/grpo_preflight.py)
        from trainer import grpo_preflight

        return grpo_preflight.dry_run(cfg)

    def build_run() -> tuple[Any, str, dict[str, Any]]:
        from trainer.train import build

        run = build(cfg)
        rows = len(run.sampler.lengths)
        return run, f"{rows} training records, {len(run.sampler)} batches per epoch, {type(run.trainer).__name__}", {
            "records": rows, "batches_per_epoch": len(run.sampler), "processes": dist.world()[1]}  # fmt: skip

    pf = Preflight(cfg, dry_run=True)
    run = load_and_build(pf, cfg, build_run)
    if run is None:
        return pf
    inspect(pf, run)
    return pf


def load_and_build(pf: Preflight, cfg: TrainConfig, build: Callable[[], tuple[Any, str, dict[str, Any]]]) -> Any | None:
    """A dry run's first three checks, in order, each stopping the rest when it fails: the versions, the model and
    processor loading, and ``build`` (the run assembled: it returns the run, the check's detail and its data). The
    run, or None when one of them failed (the rest marked skipped)."""
    pf.run("versions", lambda: check_versions(cfg, family_name(cfg)))
    if pf.get("versions").status == "fail":  # type: ignore[union-attr]
        _skip_rest(pf, "a library the trainer needs is missing or too old")
        return None
    if pf.run("loading", lambda: check_loading(cfg)).status in ("fail", "fault"):
        _skip_rest(pf, "the model or processor does not load")
        return None
    holder: dict[str, Any] = {}

    def built() -> tuple[str, str, dict[str, Any]]:
        holder["run"], detail, data = build()
        return "ok", detail, data

    if pf.run("build", built).status != "ok":
        _skip_rest(pf, "the run could not be assembled")
        return None
    return holder["run"]


def before_training(run: Any) -> Preflight:
    """The same checks on the run that is about to train (cheap ones always; see the module docstring).
    Prints the table and writes ``preflight.json`` (rank 0); a failing check raises :class:`PreflightFailed`."""
    from trainer import dist

    cfg = run.cfg
    pf = Preflight(cfg, dry_run=False)
    pf.run("versions", lambda: check_versions(cfg, run.family.name))
    pf.run("loading", lambda: check_loading(cfg, run))
    inspect(pf, run)
    if not pf.failed and cfg.preflight_audio_check and _model_checks_possible(cfg) is None:
        pf.held_out = choose_held_out(run)
        if pf.held_out is not None:
            pf.held_out["before"] = _hearing_of(run, pf.held_out.pop("_batches")).to_dict()
    if dist.is_main():
        pf.print_table()
        pf.write(cfg.output_dir)
    fault = next((c.error for c in pf.checks if c.status == "fault" and c.error is not None), None)
    if fault is not None:
        raise fault
    if pf.failed:
        names = "; ".join(f"{c.title}: {c.detail}" for c in pf.failed)
        raise PreflightFailed(f"pre-flight failed before step 1 ({Path(cfg.output_dir) / PREFLIGHT_FILE}): {names}")
    return pf


def report_entries(run: Any, pf: Preflight | None) -> dict[str, Any]:
    """For ``train_report.json``: the pre-flight summary, and the hearing comparison on held-out records
    before and after training."""
    if pf is None:
        return {}
    out: dict[str, Any] = {"preflight": pf.summary()}
    held = pf.held_out
    if held is not None:
        batches = _held_out_batches(run, held)
        after = _hearing_of(run, batches).to_dict()
        held = {**held, "after": after, "threshold": run.cfg.audio_check_min_kl}
        held["heard_after_training"] = after["kl_zeroed"] >= run.cfg.audio_check_min_kl
        if not held["heard_after_training"]:
            from trainer import dist

            if dist.is_main():
                print(
                    f"[audiodata] warning: after training the model's predictions on {held['source']} barely depend on "
                    f"the audio (mean KL {after['kl_zeroed']:.3g} < {run.cfg.audio_check_min_kl}): not conditioned on audio",
                    file=sys.stderr,
                    flush=True,
                )
        out["audio_conditioning"] = held
    return out


def run_dry(cfg: TrainConfig, as_json: bool) -> int:
    """The CLI's dry run: table (or JSON on stdout), ``preflight.json``, the exit code."""
    from trainer import dist

    with contextlib.redirect_stdout(sys.stderr):  # library chatter never mixes with the report
        pf = dry_run(cfg)
    if dist.is_main():
        pf.write(cfg.output_dir)
        if as_json:
            print(json.dumps(pf.to_dict(), indent=2, default=str))
        else:
            pf.print_table(sys.stdout)
    return pf.exit_code


# -- the shared checks ----------------------------------------------------------------------
def inspect(pf: Preflight, run: Any) -> None:
    """The checks that need the assembled run, in order (a later one is skipped when its input failed)."""
    run_checks(
        pf,
        run,
        first=("batches", lambda: check_batches(pf, run), "the longest batches could not be encoded and collated"),
        audio_tokens=lambda: check_audio_tokens(pf, run),
        step=("step", lambda: check_step(pf, run), "step 1 trains this batch (the longest goes first); --dry-run runs it"),
        hearing=lambda: check_hearing(pf, run),
    )


CheckFn = Callable[[], tuple[str, str, dict[str, Any]]]


def run_checks(
    pf: Preflight,
    run: Any,
    *,
    first: tuple[str, CheckFn, str],
    audio_tokens: CheckFn,
    step: tuple[str, CheckFn, str],
    hearing: CheckFn,
) -> None:
    """The order every pre-flight (SFT/DPO/KTO, GRPO) runs its run-level checks in: ``first`` (name, check, why the
    rest is skipped when it fails), the audio tokens, memory, then -- when the model can run here -- ``step`` (name,
    check, why it is left to step 1 for a model too big to try twice) and hearing."""
    name, check, failed = first
    if pf.run(name, check).status in ("fail", "fault"):
        _skip_rest(pf, failed)
        return
    pf.run("audio_tokens", audio_tokens)
    pf.run("memory", lambda: check_memory(pf, run))
    step_name, step_check, too_big = step
    blocked = _model_checks_possible(run.cfg)
    if blocked:
        pf.skip(step_name, blocked)
        pf.skip("hearing", blocked)
        return
    if pf.dry_run or (pf.params or 0) < STEP_PARAMS_LIMIT:
        pf.run(step_name, step_check)
    else:
        pf.skip(step_name, f"{(pf.params or 0) / 1e9:.1f}e9 parameters: {too_big}")
    if not run.cfg.preflight_audio_check:
        pf.skip("hearing", "preflight_audio_check: false")
    else:
        pf.run("hearing", hearing)


def check_versions(cfg: TrainConfig, family: str | None) -> tuple[str, str, dict[str, Any]]:
    from trainer.versions import declared_conflicts, requirements

    checks = requirements(family, cfg.to_dict())
    data = {c.package: c.to_dict() for c in checks}
    fails = [c.problem() for c in checks if c.status == "fail"]
    warns = [c.problem() for c in checks if c.status == "warn"] + declared_conflicts(checks)
    if fails:
        return "fail", "; ".join(p for p in fails if p), data
    listed = ", ".join(f"{c.package} {c.installed}" for c in checks if c.needed and c.installed)
    if warns:
        return "warn", "; ".join(p for p in warns if p) + f" ({listed})", data
    return "ok", listed, data


def check_loading(cfg: TrainConfig, run: Any = None) -> tuple[str, str, dict[str, Any]]:
    """Config, processor and tokenizer load (the run's own in a real run), and agree with each other."""
    from trainer.families import detect_family, get_family, read_chat_template

    if run is not None:
        family, config, processor = run.family, run.model.config, run.processor
    else:
        from transformers import AutoConfig

        family = get_family(cfg.family) if cfg.family else detect_family(cfg.model)
        config = AutoConfig.from_pretrained(cfg.model)
        processor = family.load_processor(cfg.model)
    config = getattr(config, "thinker_config", None) or config
    tok = processor.tokenizer
    problems: list[str] = []
    token = getattr(processor, "audio_token", None) or getattr(tok, "audio_token", None) or "<|AUDIO|>"
    proc_id = tok.convert_tokens_to_ids(token)
    model_id = getattr(config, "audio_token_index", None)
    if model_id is None:
        model_id = getattr(config, "audio_token_id", None)
    if proc_id is None or proc_id == tok.unk_token_id or token not in tok.get_vocab():
        problems.append(f"the tokenizer has no {token} token")
    elif model_id is not None and int(model_id) != int(proc_id):
        problems.append(f"the processor's {token} is id {proc_id}, the model's config expects {model_id} (other checkpoints?)")
    vocab = int(config.get_text_config().vocab_size)
    if len(tok) > vocab:
        problems.append(f"the tokenizer has {len(tok)} tokens, the model's embeddings {vocab}")
    fe = getattr(processor, "feature_extractor", None)
    audio_cfg = getattr(config, "audio_config", None)
    mels = getattr(audio_cfg, "num_mel_bins", None)
    if fe is None:
        problems.append("the processor has no feature extractor")
    else:
        if mels is not None and int(fe.feature_size) != int(mels):
            problems.append(f"the feature extractor makes {fe.feature_size} mel bins, the audio encoder takes {mels}")
        if int(fe.sampling_rate) != family.math.sampling_rate:
            rate = family.math.sampling_rate
            problems.append(f"the feature extractor expects {fe.sampling_rate} Hz, the trainer decodes at {rate} Hz")
    template = read_chat_template(cfg.chat_template) or getattr(processor, "chat_template", None)
    if not template:
        problems.append("no chat template (neither the processor's nor chat_template)")
    data = {
        "family": family.name,
        "model_type": config.model_type,
        "config": type(config).__name__,
        "processor": type(processor).__name__,
        "tokenizer": type(tok).__name__,
        "tokenizer_size": len(tok),
        "vocab_size": vocab,
        "audio_token": token,
        "audio_token_id": {"processor": proc_id, "model": model_id},
        "mel_bins": {"processor": getattr(fe, "feature_size", None), "model": mels},
        "sampling_rate": getattr(fe, "sampling_rate", None),
    }
    if problems or fe is None:  # no feature extractor is one of the problems
        return "fail", "; ".join(problems), data
    detail = (
        f"{family.name}: {type(config).__name__}, {type(processor).__name__}, {type(tok).__name__} ({len(tok)} tokens); "
        f"{token} = {proc_id} in both; {mels} mel bins at {fe.sampling_rate} Hz"
    )
    return "ok", detail, data


def pick_batches(sampler: Any) -> list[tuple[str, list[int]]]:
    """The plan's batches that cost most: most padded tokens, longest row, most clips (estimates; deduplicated)."""
    plan = sampler.batches()
    if not plan:
        return []

    def est(b: list[int]) -> list[int]:
        return [sampler.lengths[sampler.source(i)] for i in b]

    picks = [
        ("most padded tokens", max(plan, key=lambda b: max(est(b)) * len(b))),
        ("longest record", max(plan, key=lambda b: max(est(b)))),
        ("most clips", max(plan, key=lambda b: sum(sampler.clips[sampler.source(i)] for i in b))),
    ]
    out: list[tuple[str, list[int]]] = []
    for why, b in picks:
        for k, (w, seen) in enumerate(out):
            if seen == b:
                out[k] = (f"{w}, {why}", seen)
                break
        else:
            out.append((why, list(b)))
    return out


def check_batches(pf: Preflight, run: Any) -> tuple[str, str, dict[str, Any]]:
    """Encode the costliest batches with the run's encoder and collate them with its collator (label check included)."""
    from trainer.data import META_ID, META_ROW

    sampler, rows = run.sampler, run.trainer.planned_rows
    picks = pick_batches(sampler)
    if not picks:
        return "fail", "the batch plan is empty: no training records left", {}
    notes: list[str] = []
    report = []
    for why, positions in picks:
        with skips_noted(run) as skipped:
            examples = rows.__getitems__(list(positions))
        notes += [f"record {rid!r} will be skipped: {reason}" for rid, reason in skipped]
        kept = [dict(e) for e in examples]
        batch = run.collator(examples)
        pf.examples += kept
        pf.collated.append(batch)
        report.append({
            "why": why,
            "rows": [int(e.get(META_ROW, -1)) for e in kept],
            "ids": [None if e.get(META_ID) is None else str(e.get(META_ID)) for e in kept],
            "estimated_longest": max(sampler.lengths[sampler.source(i)] for i in positions),
            "longest": int(batch["attention_mask"].sum(-1).max()),
            "padded_tokens": _padded_tokens(batch),
            "clips": _clips(batch),
        })  # fmt: skip
    if pf.template is None:
        pf.template = render_record(run, int(pf.examples[0].get(META_ROW, 0)))
    shape = ", ".join(
        f"{b['why']}: {len(b['rows'])} rows, {b['padded_tokens']} padded tokens, {b['clips']} clips" for b in report
    )
    data = {"batches": report, "notes": notes}
    if notes:
        return "warn", f"{shape}; " + "; ".join(notes), data
    return "ok", shape, data


def check_audio_tokens(pf: Preflight, run: Any) -> tuple[str, str, dict[str, Any]]:
    """Per encoded record: placeholders in the text == what its features expand to == lint's count."""
    from trainer.data import META_ID, META_ROW, audio_pieces
    from trainer.longaudio import window_samples

    family, collator = run.family, run.collator
    math_ = family.math
    window = window_samples(math_) if run.cfg.long_audio == "split" else None
    raw = run.trainer.planned_rows.rows.select_columns(["audio_info"]).with_format(None)
    fails, warns, checked = [], [], []
    for e in pf.examples:
        if "feature_attention_mask" not in e:
            continue
        rid = e.get(META_ID)
        text = int((e["input_ids"] == collator.audio_id).sum())
        features = sum(family.audio_token_counts(e))
        pieces = audio_pieces(raw[int(e[META_ROW])]["audio_info"], math_, window) if META_ROW in e else []
        lint = sum(math_.audio_tokens(n) - 2 for n in pieces)  # lint counts each clip's <|audio_bos|>/<|audio_eos|> too
        checked.append({"id": None if rid is None else str(rid), "text": text, "features": features, "lint": lint})
        if text != features:
            fails.append(
                f"record {rid!r}: {text} audio tokens in the text, its features make {features} "
                "(the model would stop with 'Audio features and audio tokens do not match')"
            )
        elif pieces and lint != features:
            warns.append(f"record {rid!r}: lint and the batch plan count {lint} audio tokens, the processor {features}")
    data = {"records": checked}
    if not checked:
        return "skip", "no clips in the longest batches", data
    total = sum(c["features"] for c in checked)
    if fails:
        return "fail", "; ".join(fails[:3]) + (f" (+{len(fails) - 3} more)" if len(fails) > 3 else ""), data
    if warns:
        return "warn", "; ".join(warns[:3]), data
    return "ok", f"{len(checked)} records, {total} audio tokens: text, features and lint's count agree", data


def check_memory(pf: Preflight, run: Any) -> tuple[str, str, dict[str, Any]]:
    """The estimate per device for the costliest collated batch, against this device's memory."""
    import os

    from trainer import dist, memory
    from trainer.memory import GB, Dims, count_parameters, estimate, meta_model, setup_of
    from trainer.train import precision

    cfg, family = run.cfg, run.family
    config = run.model.config
    config = getattr(config, "thinker_config", None) or config
    device, total, what = memory.device_memory(int(os.environ.get("LOCAL_RANK", "0")))
    cuda = device.startswith("cuda")
    regex = (cfg.lora_target_modules or family.lora_target_regex()) if cfg.use_lora else None
    counts = count_parameters(meta_model(config, family), family, regex, cfg.lora_r, cfg.train_projector)
    pf.params = counts.total
    setup = setup_of(cfg, precision(cfg), dist.world()[1], bool(run.trainer.args.gradient_checkpointing), cuda)
    tokens = max(_padded_tokens(b) for b in pf.collated)
    clips = max(_clips(b) for b in pf.collated)
    est = estimate(counts, Dims.of(config), setup, tokens, clips)
    data = {
        "estimate": est.to_dict(),
        "parameters": counts.to_dict(),
        "setup": vars(setup),
        "micro_batch": {"padded_tokens": tokens, "clips": clips},
        "device": device,
        "device_memory_gb": None if total is None else round(total / GB, 3),
        "compared_with": what,
    }
    need = f"~{_size(est.total)} per device ({setup.method}, {setup.precision}, {tokens} padded tokens, {clips} clips)"
    if total is None:
        return "warn", f"{need}; the device's memory is unknown", data
    share = est.total / total
    where = f"{_size(total)} {what} on {device}"
    if not cuda:
        if share > 1:
            return "warn", f"{need} exceeds {where}", data
        return "ok", f"{need} of {where}, compared with host RAM", data
    if share > 1:
        advice = "lower per_device_batch_size or max_clips_per_batch, enable gradient_checkpointing, or use LoRA/QLoRA"
        return "fail", f"{need} exceeds {where}: {advice}", data
    if share > 0.9:
        return "warn", f"{need}: {share:.0%} of {where}, little headroom", data
    return "ok", f"{need}: {share:.0%} of {where}", data


def check_step(pf: Preflight, run: Any) -> tuple[str, str, dict[str, Any]]:
    """One forward and backward of the longest collated batch through the trainer's own loss; the gradients
    are thrown away and the trainer's metrics and RNG state come back as they were."""
    import torch

    from trainer.data import BATCH_META

    trainer = run.trainer
    model = trainer.model
    longest = max(pf.collated, key=_padded_tokens)
    batch = dict(longest)
    batch.pop(BATCH_META, None)
    saved = {a: copy.deepcopy(getattr(trainer, a)) for a in ("_metrics", "_total_train_tokens") if hasattr(trainer, a)}
    cuda = torch.cuda.is_available()
    devices = [torch.cuda.current_device()] if cuda else []
    was = model.training
    t = time.time()
    try:
        with torch.random.fork_rng(devices=devices):
            model.train()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            inputs = trainer._prepare_inputs(batch)
            with trainer.compute_loss_context_manager(), trainer.accelerator.autocast():
                loss = trainer.compute_loss(model, inputs)
            trainer.accelerator.backward(loss)
            grads = [(n, p.grad) for n, p in model.named_parameters() if p.requires_grad]
            value = float(loss.detach())
            got = sum(1 for _, g in grads if g is not None)
            nonzero = sum(1 for _, g in grads if g is not None and bool(g.abs().sum() > 0))
            bad = [n for n, g in grads if g is not None and not bool(torch.isfinite(g).all())]
            peak = torch.cuda.max_memory_allocated() if cuda else None
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
        for a, v in saved.items():
            setattr(trainer, a, v)
    seconds = time.time() - t
    data = {"loss": value, "trainable_tensors": len(grads), "with_gradient": got, "nonzero_gradient": nonzero,
            "non_finite": bad[:10], "seconds": round(seconds, 3)}  # fmt: skip
    measured = ""
    if peak is not None:
        from trainer.memory import GB

        data["peak_allocated_gb"] = round(peak / GB, 3)
        measured = f", peak {_size(peak)} allocated"
        memory = pf.get("memory")
        if memory is not None:
            memory.data["measured_peak_gb"] = data["peak_allocated_gb"]
    lora = " (LoRA's B starts at zero, so A's first gradient is zero)" if run.cfg.use_lora and nonzero < got else ""
    detail = f"loss {value:.4f}; {got} of {len(grads)} trainable tensors got a gradient, {nonzero} nonzero{lora}; "
    detail += f"{seconds:.2f} s{measured}"
    if not math.isfinite(value):
        return "fail", f"the loss is not finite ({value}) on the longest batch", data
    if bad:
        return "fail", f"non-finite gradients in {', '.join(bad[:3])}", data
    if not grads or nonzero == 0:
        return "fail", f"no trainable parameter got a nonzero gradient ({len(grads)} trainable tensors)", data
    if got < len(grads):
        return "warn", f"{len(grads) - got} trainable tensors got no gradient (unused by this batch?); {detail}", data
    return "ok", detail, data


def check_hearing(pf: Preflight, run: Any) -> tuple[str, str, dict[str, Any]]:
    """Real vs zeroed (and swapped) clips on sampled training records; near-zero difference fails."""
    from trainer.hearing import NoAudioFeatures

    cfg = run.cfg
    audio_rows = [i for i, c in enumerate(run.sampler.clips) if c > 0]
    if not audio_rows:
        return "skip", "no training record has audio", {}
    picks = sorted(random.Random(cfg.seed).sample(audio_rows, min(cfg.audio_check_records, len(audio_rows))))
    with skips_noted(run):
        batches = [run.collator(run.trainer.planned_rows.__getitems__([i])) for i in picks]
    if pf.template is None or pf.template.get("row") not in picks:
        pf.template = render_record(run, picks[0])
    threshold = cfg.audio_check_min_kl
    try:
        h = _hearing_of(run, batches)
    except NoAudioFeatures as exc:
        return "fail", f"not conditioned on audio: {exc}", {"threshold": threshold}
    data = {**h.to_dict(), "threshold": threshold}
    swap = "" if h.kl_swapped is None else f", another clip's audio {h.kl_swapped:.3g}"
    measured = (
        f"mean KL of the reply predictions, real vs zeroed clips: {h.kl_zeroed:.3g} nats/token{swap} "
        f"(threshold {threshold:g}; {len(h.records)} records, {h.targets} reply tokens; "
        f"loss {h.loss_real:.4f} vs {h.loss_zeroed:.4f})"
    )
    if h.targets == 0:
        return "fail", "no reply tokens to compare in the sampled records", data
    if h.kl_zeroed < threshold:
        return "fail", f"not conditioned on audio: {measured}", data
    if h.kl_swapped is not None and h.kl_swapped < threshold:
        return "warn", f"hears whether there is audio but barely which: {measured}", data
    return "ok", measured, data


# -- held-out records for after training ------------------------------------------------------
def choose_held_out(run: Any) -> dict[str, Any] | None:
    """Records with audio to compare before and after training: the eval split's, else training records
    this run will not reach (max_steps short of an epoch), else training records (said so)."""
    cfg = run.cfg
    k = cfg.audio_check_records
    rng = random.Random(cfg.seed + 1)
    evals = run.trainer.eval_dataset
    if evals is not None:
        info = evals.select_columns(["audio_info"]).with_format(None)["audio_info"]
        candidates = [i for i, a in enumerate(info) if a]
        if candidates:
            picks = sorted(rng.sample(candidates, min(k, len(candidates))))
            held = {"source": f"eval split {cfg.eval_split!r}", "held_out": True, "dataset": "eval", "rows": picks}
            held["_batches"] = _held_out_batches(run, held)
            return held
    sampler = run.sampler
    unseen = sorted(set(range(len(sampler.lengths))) - _rows_trained(run))
    audio_unseen = [i for i in unseen if sampler.clips[i] > 0]
    if audio_unseen:
        picks = sorted(rng.sample(audio_unseen, min(k, len(audio_unseen))))
        held = {"source": "training records this run does not reach", "held_out": True, "dataset": "train", "rows": picks}
    else:
        audio_rows = [i for i, c in enumerate(sampler.clips) if c > 0]
        if not audio_rows:
            return None
        picks = sorted(rng.sample(audio_rows, min(k, len(audio_rows))))
        held = {"source": "training records (the run trains on every record: set eval_split for held-out ones)",
                "held_out": False, "dataset": "train", "rows": picks}  # fmt: skip
    held["_batches"] = _held_out_batches(run, held)
    return held


def _rows_trained(run: Any) -> set[int]:
    """Rows of epoch 0's plan within the micro-batches this run trains (all rows when it trains an epoch or more)."""
    from trainer import dist

    cfg, sampler = run.cfg, run.sampler
    per_rank = sampler.steps_per_epoch
    micro = cfg.max_steps * cfg.gradient_accumulation_steps if cfg.max_steps > 0 else math.ceil(cfg.num_train_epochs * per_rank)
    if micro >= per_rank:
        return set(range(len(sampler.lengths)))
    plan = sampler.batches()[: micro * dist.world()[1]]
    return {sampler.source(i) for b in plan for i in b}


def _held_out_batches(run: Any, held: dict[str, Any]) -> list[dict[str, Any]]:
    ds = run.trainer.eval_dataset if held["dataset"] == "eval" else run.trainer.planned_rows
    with skips_noted(run):
        return [run.collator(ds.__getitems__([i])) for i in held["rows"]]


def _hearing_of(run: Any, batches: list[dict[str, Any]]) -> Any:
    from trainer.hearing import measure

    return measure(run.trainer.model, batches, autocast=run.trainer.accelerator.autocast)


# -- helpers -------------------------------------------------------------------------------------
@contextlib.contextmanager
def skips_noted(run: Any) -> Iterator[list[tuple[Any, str]]]:
    """Records the encoder skips while the pre-flight encodes are noted here, not logged: training logs
    each skip to ``skipped.jsonl`` when it meets the record, once, and a dry run writes nothing but its report."""
    noted: list[tuple[Any, str]] = []
    run.skips.add = lambda row, reason: noted.append((row.get("id"), reason))
    try:
        yield noted
    finally:
        del run.skips.add


def render_record(run: Any, row: int) -> dict[str, Any]:
    """One record's conversation through the chat template as training renders it (audio as placeholders)."""
    from trainer.data import audio_pieces
    from trainer.longaudio import window_samples

    raw = run.trainer.planned_rows.rows.with_format(None)[row]
    collator, family = run.collator, run.family
    try:
        if "audios" in raw:
            _, windows = collator.audios(raw)
        else:  # rows read without their audio (a features cache): the windows from the stored durations
            window = window_samples(family.math) if run.cfg.long_audio == "split" else None
            windows = [len(audio_pieces([a], family.math, window)) for a in raw.get("audio_info") or []]
    except Exception:  # the template is shown even when the clip does not decode
        windows = None
    messages = list(raw["messages"])
    for key in ("chosen", "completion"):
        if raw.get(key):
            messages += list(raw[key])
    try:
        conv = family.conversation(messages, collator.system(raw), windows)
        return {"record": raw.get("id"), "row": row, "rendered": collator.render(conv, False)}
    except Exception as exc:  # a template that does not render is reported, never a crash of the report
        if is_os_fault(exc):
            raise
        return {"record": raw.get("id"), "row": row, "rendered": None, "error": f"{type(exc).__name__}: {exc}"}


def family_name(cfg: TrainConfig) -> str | None:
    """The family from the config, or from a local model's config.json (no transformers import)."""
    if cfg.family:
        return cfg.family
    path = Path(cfg.model).expanduser() / "config.json"
    try:
        model_type = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None
    from trainer.families import FAMILIES

    return next((f.name for f in FAMILIES.values() if model_type in f.model_types), None)


def platform_info() -> dict[str, Any]:
    import os

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    try:
        import torch

        out["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
            out["gpus"] = [{"name": p.name, "memory_gb": round(p.total_memory / 1e9, 2)} for p in props]
        else:
            out["gpus"] = []
    except ImportError:
        pass
    from trainer import dist

    out["processes"] = dist.world()[1]
    return out


def config_summary(cfg: TrainConfig) -> dict[str, Any]:
    keys = (
        "task", "model", "family", "data", "data_config", "train_split", "eval_split", "output_dir", "precision",
        "use_lora", "lora_r", "load_in_4bit", "train_projector", "deepspeed", "fsdp", "gradient_checkpointing",
        "per_device_batch_size", "gradient_accumulation_steps", "max_clips_per_batch", "max_length", "long_audio",
        "max_steps", "num_train_epochs", "learning_rate", "attn_implementation", "chat_template", "system_prompt",
    )  # fmt: skip
    return {k: getattr(cfg, k) for k in keys}


def _model_checks_possible(cfg: TrainConfig) -> str | None:
    """Why the forward checks cannot run outside the training engine (None: they can)."""
    if cfg.deepspeed or cfg.fsdp:
        return f"{'deepspeed' if cfg.deepspeed else 'fsdp'}: the weights are sharded until the engine starts; step 1 is the check"
    return None


def _skip_rest(pf: Preflight, why: str) -> None:
    done = {c.name for c in pf.checks}
    for name in pf.order:
        if name not in done and not (name == "build" and not pf.dry_run):
            pf.skip(name, why)


def _classify(exc: BaseException) -> tuple[str, str]:
    import torch

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, torch.OutOfMemoryError):
        return "fail", (
            f"out of memory: {text[:300]}; lower per_device_batch_size or max_clips_per_batch, enable gradient_checkpointing, "
            "or use LoRA/QLoRA"
        )
    accel = getattr(torch, "AcceleratorError", ())
    if isinstance(exc, accel) or (isinstance(exc, RuntimeError) and "CUDA error" in text):
        return "fault", f"{type(exc).__name__}: {text[:300]}"
    if isinstance(exc, ConfigError):
        return "fail", text
    return "fail", f"{type(exc).__name__}: {text[:500]}"


def _padded_tokens(batch: dict[str, Any]) -> int:
    n = int(batch["input_ids"].numel())
    if "KL_input_ids" in batch:  # KTO's KL rows run through the model too
        n += int(batch["KL_input_ids"].numel())
    return n


def _clips(batch: dict[str, Any]) -> int:
    feats = batch.get("input_features")
    return 0 if feats is None else int(feats.shape[0])


def _size(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
