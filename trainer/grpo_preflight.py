"""Pre-flight of a GRPO run: ``audiodata train grpo --dry-run``, and the same checks before step 1 of every run.

The same report, table, exit codes and ``preflight.json`` as SFT/DPO/KTO (trainer/preflight.py, whose shared checks
run here unchanged: ``versions``, ``loading``, ``build``), with the checks a GRPO run needs in place of the ones
built for collated reply batches:

``prompts``       the costliest prompts (most prompt tokens, most clips) rendered with their audio exactly as the
                  trainer renders them (:func:`trainer.grpo.encode_prompt`); a prompt plus ``max_completion_length``
                  must fit the model's positions, and a clip that does not decode is named (it would be trained on
                  as silence with no reward)
``audio_tokens``  per prompt: the placeholders in its ids, what its features expand to, and lint's count from the
                  stored durations agree
``memory``        the estimate per device (trainer/memory.py) for a micro-batch of ``per_device_batch_size``
                  completions of the longest prompt plus ``max_completion_length`` tokens
``rollout``       one GRPO step on the longest prompts through the trainer itself: generation with the audio,
                  the rewards, the loss and a backward pass; finite loss and gradients, rewards computed (the
                  trainer's metrics, logs, counters and RNG come back as they were; nothing is optimized)
``hearing``       does the policy hear the audio? the KL of its predictions of each record's reference answer
                  with the real clips against zeroed ones (trainer/hearing.py), on sampled records; again after
                  training on held-out ones (the eval prompts when there are), as for SFT

A real run stops before step 1 (exit 2) on a failing check; ``--dry-run`` trains nothing.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import Counter
from typing import Any

import torch

from trainer.config import TrainConfig
from trainer.preflight import (
    GRPO_CHECKS,
    Preflight,
    PreflightFailed,
    check_loading,
    check_versions,
    load_and_build,
    run_checks,
)

#: Prompts the checks encode: the longest by estimated tokens and the ones with the most clips.
PICKS = 4


def dry_run(cfg: TrainConfig) -> Preflight:
    """``train grpo --dry-run``: every check, nothing trained."""
    from trainer import dist

    def build_run() -> tuple[Any, str, dict[str, Any]]:
        from trainer.grpo import build

        run = build(cfg)
        evals = 0 if run.eval_rows is None else len(run.eval_rows)
        detail = f"{len(run.rows)} training prompts, {evals} held out, {type(run.trainer).__name__}"
        return run, detail, {"records": len(run.rows), "eval_records": evals, "processes": dist.world()[1]}

    pf = Preflight(cfg, dry_run=True, order=GRPO_CHECKS)
    run = load_and_build(pf, cfg, build_run)
    if run is not None:
        inspect(pf, run)
    return pf


def before_training(run: Any) -> Preflight:
    """The checks on the run about to train; the table and ``preflight.json`` (rank 0); a failing check raises
    :class:`~trainer.preflight.PreflightFailed` (exit 2)."""
    from pathlib import Path

    from trainer import dist
    from trainer.preflight import PREFLIGHT_FILE

    cfg = run.cfg
    pf = Preflight(cfg, dry_run=False, order=GRPO_CHECKS)
    pf.run("versions", lambda: check_versions(cfg, run.family.name))
    pf.run("loading", lambda: check_loading(cfg, run))
    inspect(pf, run)
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


def inspect(pf: Preflight, run: Any) -> None:
    """The checks that need the assembled run, in the order every pre-flight runs them (:func:`run_checks`)."""
    state: dict[str, Any] = {}
    run_checks(
        pf,
        run,
        first=("prompts", lambda: check_prompts(pf, run, state), "the longest prompts could not be rendered"),
        audio_tokens=lambda: check_audio_tokens(run, state),
        step=("rollout", lambda: check_rollout(run, state), "step 1 is this check; --dry-run runs it"),
        hearing=lambda: check_hearing(pf, run),
    )


# -- the checks ------------------------------------------------------------------------------------------------
def pick_prompts(rows: Any, k: int = PICKS) -> list[int]:
    """Rows of the costliest prompts: the longest (text characters + audio seconds as tokens) and the most clips."""
    cols = rows.select_columns([c for c in ("prompt", "audio_info") if c in rows.column_names]).with_format(None)
    sizes = []
    for i, r in enumerate(cols):
        chars = sum(len(str(m.get("content") or "")) for m in r.get("prompt") or [])
        seconds = sum(float(a.get("duration") or 0.0) for a in r.get("audio_info") or [])
        sizes.append((i, chars / 4 + seconds * 25, len(r.get("audio_info") or [])))  # ~4 chars a token, 25 tokens/s
    longest = [i for i, _, _ in sorted(sizes, key=lambda x: -x[1])[:k]]
    clips = [i for i, _, _ in sorted(sizes, key=lambda x: -x[2])[:k]]
    return list(dict.fromkeys(longest + clips))[:k]


def check_prompts(pf: Preflight, run: Any, state: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Render the costliest prompts with their audio; prompt + completion must fit the model's positions."""
    from trainer.grpo import encode_prompt

    picks = pick_prompts(run.rows)
    if not picks:
        return "fail", "no training prompts left", {}
    encoded = [(i, run.rows[i], encode_prompt(run.collator, run.rows[i])) for i in picks]
    state["encoded"] = encoded
    config = run.model.config
    config = getattr(config, "thinker_config", None) or config
    limit = getattr(config.get_text_config(), "max_position_embeddings", None)
    longest = max(len(p.ids) for _, _, p in encoded)
    need = longest + run.cfg.max_completion_length
    clips = max(0 if p.features is None else len(p.features) for _, _, p in encoded)
    # the memory check's micro-batch: per_device_batch_size completions of the longest prompt plus its completion
    batch = run.cfg.per_device_batch_size
    pf.collated = [{"input_ids": torch.zeros((batch, need), dtype=torch.long),
                    "input_features": torch.zeros((batch * clips, 1, 1))}]  # fmt: skip
    broken = [f"record {r.get('id')!r}: {p.broken} (trained on as silence, no reward)" for _, r, p in encoded if p.broken]
    data = {
        "prompts": [{"row": i, "id": r.get("id"), "tokens": len(p.ids), "clips": 0 if p.features is None else len(p.features)}
                    for i, r, p in encoded],
        "longest_prompt": longest, "max_completion_length": run.cfg.max_completion_length, "positions": limit,
    }  # fmt: skip
    shape = f"{len(encoded)} prompts, longest {longest} tokens + {run.cfg.max_completion_length} completion, up to {clips} clips"
    if limit is not None and need > int(limit):
        return "fail", f"{shape}: {need} tokens exceed the model's {limit} positions (lower max_completion_length)", data
    if broken:
        return "warn", f"{shape}; " + "; ".join(broken[:3]), data
    return "ok", shape, data


def check_audio_tokens(run: Any, state: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Per rendered prompt: placeholders in the ids == what its features expand to == lint's count."""
    from trainer.data import audio_pieces
    from trainer.longaudio import window_samples

    family, audio_id = run.family, run.collator.audio_id
    window = window_samples(family.math) if run.cfg.long_audio == "split" else None
    fails, warns, checked = [], [], []
    for _, row, p in state["encoded"]:
        if p.features is None or p.broken:
            continue
        text = p.ids.count(audio_id)
        features = sum(family.audio_token_counts({"feature_attention_mask": p.mask}))
        pieces = audio_pieces(row.get("audio_info") or [], family.math, window)
        lint = sum(family.math.audio_tokens(n) - 2 for n in pieces)  # lint counts <|audio_bos|>/<|audio_eos|> too
        rid = row.get("id")
        checked.append({"id": None if rid is None else str(rid), "text": text, "features": features, "lint": lint})
        if text != features:
            fails.append(f"record {rid!r}: {text} audio tokens in the prompt, its features make {features}")
        elif pieces and lint != features:
            warns.append(f"record {rid!r}: lint counts {lint} audio tokens, the processor {features}")
    data = {"records": checked}
    if not checked:
        return "skip", "no clips in the longest prompts", data
    if fails:
        return "fail", "; ".join(fails[:3]), data
    if warns:
        return "warn", "; ".join(warns[:3]), data
    total = sum(c["features"] for c in checked)
    return "ok", f"{len(checked)} prompts, {total} audio tokens: text, features and lint's count agree", data


def check_rollout(run: Any, state: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """One generation batch of the longest prompts through the trainer (generate with the audio, reward, loss,
    backward); everything it touched on the trainer comes back as it was."""
    t, cfg = run.trainer, run.cfg
    prompts = cfg.per_device_batch_size // cfg.num_generations or 1
    rows = [r for _, r, _ in state["encoded"]][:prompts]
    rows = (rows * prompts)[:prompts]
    inputs = [dict(r) for r in rows for _ in range(cfg.num_generations)]
    model = t.model
    saved = {a: copy.deepcopy(getattr(t, a)) for a in ("_metrics", "_logs") if hasattr(t, a)}
    counters = Counter(t.completions_per_prompt)
    tokens_seen = t.state.num_input_tokens_seen
    cuda = torch.cuda.is_available()
    was = model.training
    started = time.time()
    absent = not hasattr(t, "current_gradient_accumulation_steps")  # set by the training loop, read by the loss
    if absent:
        t.current_gradient_accumulation_steps = t.args.gradient_accumulation_steps
    try:
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
            model.train()
            batch = t._generate_and_score_completions(inputs)
            with t.compute_loss_context_manager(), t.accelerator.autocast():
                loss = t.compute_loss(model, batch)
            t.accelerator.backward(loss)
            grads = [(n, p.grad) for n, p in model.named_parameters() if p.requires_grad]
            value = float(loss.detach())
            rewards = {k: list(v) for k, v in t._logs["rewards"].items()}
            lengths = batch["completion_mask"].sum(-1).tolist()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
        for a, v in saved.items():
            setattr(t, a, v)
        t.completions_per_prompt = counters
        t.state.num_input_tokens_seen = tokens_seen
        if absent:
            del t.current_gradient_accumulation_steps
    seconds = time.time() - started
    means = {k: _mean(v[-len(inputs) :]) for k, v in rewards.items()}
    bad = [n for n, g in grads if g is not None and not bool(torch.isfinite(g).all())]
    nonzero = sum(1 for _, g in grads if g is not None and bool(g.abs().sum() > 0))
    data = {"loss": value, "completions": len(inputs), "rewards": means, "completion_tokens": int(max(lengths, default=0)),
            "trainable_tensors": len(grads), "nonzero_gradient": nonzero, "non_finite": bad[:10],
            "seconds": round(seconds, 3)}  # fmt: skip
    scored = ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} none" for k, v in means.items())
    detail = f"{len(inputs)} completions of {prompts} prompt(s); rewards {scored}; loss {value:.4f}; {seconds:.2f} s"
    if not math.isfinite(value):
        return "fail", f"the loss is not finite ({value}); {detail}", data
    if bad:
        return "fail", f"non-finite gradients in {', '.join(bad[:3])}", data
    if means and all(v is None for v in means.values()):
        return "fail", f"no reward function scored any completion (all None); {detail}", data
    if nonzero == 0:  # every group's completions got the same reward: no advantage, so no gradient from this batch
        return "warn", f"no gradient from this batch (equal rewards within every group); {detail}", data
    return "ok", detail, data


def check_hearing(pf: Preflight, run: Any) -> tuple[str, str, dict[str, Any]]:
    """The policy's predictions of sampled records' reference answers, real vs zeroed clips (trainer/hearing.py)."""
    from trainer.hearing import NoAudioFeatures

    cfg = run.cfg
    rows = [i for i, a in enumerate(run.rows.select_columns(["audio_info"]).with_format(None)["audio_info"]) if a] \
        if "audio_info" in run.rows.column_names else []  # fmt: skip
    if not rows:
        return "skip", "no training prompt has audio", {}
    picks = sorted(random.Random(cfg.seed).sample(rows, min(cfg.audio_check_records, len(rows))))
    threshold = cfg.audio_check_min_kl
    try:
        h = hearing_of(run, [run.rows[i] for i in picks])
    except NoAudioFeatures as exc:
        return "fail", f"not conditioned on audio: {exc}", {"threshold": threshold}
    pf.held_out = held_out(run)
    data = {**h.to_dict(), "threshold": threshold}
    measured = (
        f"mean KL of the answer predictions, real vs zeroed clips: {h.kl_zeroed:.3g} nats/token "
        f"(threshold {threshold:g}; {len(h.records)} records, {h.targets} answer tokens)"
    )
    if h.targets == 0:
        return "fail", "no answer tokens to compare in the sampled records", data
    if h.kl_zeroed < threshold:
        return "fail", f"not conditioned on audio: {measured}", data
    return "ok", measured, data


# -- hearing on prompt + reference answer ------------------------------------------------------------------------
def answer_batch(run: Any, row: dict[str, Any]) -> dict[str, Any]:
    """One record as a one-row batch for trainer/hearing.py: its prompt as GRPO renders it, then its reference answer
    (the choice's letter and text for a multiple-choice item) and the end of turn as the scored reply."""
    from trainer.data import BATCH_META
    from trainer.grpo import _stop_ids, encode_prompt

    p = encode_prompt(run.collator, row)
    tok = run.processor.tokenizer
    answer = str(row.get("answer") or "")
    choices = list(row.get("choices") or [])
    if answer in choices:
        answer = f"{chr(65 + choices.index(answer))}. {answer}"
    stops = _stop_ids(run.family, run.processor, run.collator)  # the end of turn, as generation stops on it
    reply = [*tok.encode(answer, add_special_tokens=False), *stops[:1]]
    ids = torch.tensor([p.ids + reply])
    labels = ids.clone()
    labels[0, : len(p.ids)] = -100
    batch: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
                             BATCH_META: {"ids": [row.get("id")]}}  # fmt: skip
    if p.features is not None and len(p.features):
        batch["input_features"], batch["feature_attention_mask"] = p.features, p.mask
    return batch


def hearing_of(run: Any, rows: list[dict[str, Any]]) -> Any:
    from trainer.hearing import measure

    return measure(run.trainer.model, [answer_batch(run, r) for r in rows], autocast=run.trainer.accelerator.autocast)


def held_out(run: Any) -> dict[str, Any] | None:
    """Records with audio for the comparison before and after training: the eval prompts', else training ones (said so)."""
    cfg = run.cfg
    source, rows, held = "training records (set eval_split for held-out ones)", run.rows, False
    if run.eval_rows is not None:
        source, rows, held = "the held-out eval prompts", run.eval_rows, True
    if "audio_info" not in rows.column_names:
        return None
    have = [i for i, a in enumerate(rows.select_columns(["audio_info"]).with_format(None)["audio_info"]) if a]
    if not have:
        return None
    picks = sorted(random.Random(cfg.seed + 1).sample(have, min(cfg.audio_check_records, len(have))))
    before = hearing_of(run, [rows[i] for i in picks]).to_dict()
    return {"source": source, "held_out": held, "dataset": "eval" if held else "train", "rows": picks, "before": before}


def report_entries(run: Any, pf: Preflight | None) -> dict[str, Any]:
    """For ``train_report.json``: the pre-flight summary and the hearing comparison before and after training."""
    if pf is None:
        return {}
    out: dict[str, Any] = {"preflight": pf.summary()}
    held = pf.held_out
    if held is not None:
        rows = run.eval_rows if held["dataset"] == "eval" else run.rows
        after = hearing_of(run, [rows[i] for i in held["rows"]]).to_dict()
        out["audio_conditioning"] = {**held, "after": after, "threshold": run.cfg.audio_check_min_kl,
                                     "heard_after_training": after["kl_zeroed"] >= run.cfg.audio_check_min_kl}  # fmt: skip
    return out


def _mean(values: list[Any]) -> float | None:
    real = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(real) / len(real) if real else None
