"""Evaluation users can read: generate on the eval records at every evaluation, score, keep fixed samples.

The eval loss says whether the model fits the eval replies; it does not say whether the model, run as
users will run it, answers. At every evaluation (``eval_strategy``/``eval_steps``, and once more at the
end of training) this module has the eval records generated for (:mod:`trainer.generation`: greedy, the
family's chat template with ``add_generation_prompt``, cut at EOS or the template's end-of-turn token) and scores the replies
with the task's metric (:mod:`trainer.metrics`: WER for transcription, else exact match, or what
``eval_metric`` says). ``eval_samples`` fixed eval records (chosen once, by ``seed``) keep their
reference and every evaluation's hypothesis, so a broken template or stop token shows at once: a
reply that runs to ``max_new_tokens`` without a stop token, or that holds template tokens (a role
header, ``<|im_start|>``), is flagged and counted.

Results go to ``OUTPUT/evaluation.jsonl`` (a line per evaluation, written as it happens: a crash keeps
what was measured; a resumed run keeps the lines up to its checkpoint), the ``evaluation`` section of
``train_report.json`` and ``OUTPUT/eval.html`` (:mod:`trainer.eval_page`).

With several processes every rank generates its own share of the records (the same number of
``generate`` calls on every rank, as ZeRO-3 and FSDP need), the results are gathered, and each record
enters the metric exactly once.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer import dist
from trainer.config import ConfigError
from trainer.generation import EvalExample, Generator, Hypothesis, examples_of
from trainer.metrics import LOWER_IS_BETTER, METRICS, NORMALISATION, score

if TYPE_CHECKING:
    from trainer.collators import AudioCollator
    from trainer.config import TrainConfig
    from trainer.families import Family

EVAL_LOG = "evaluation.jsonl"
EVAL_PAGE = "eval.html"
EVAL_METRICS = ("auto", *METRICS)
EVAL_STRATEGIES = ("steps", "epoch")
#: Audio embedded in eval.html per clip, at most (the model hears 30 s anyway).
MAX_EMBED_SECONDS = 30.0


def check_config(cfg: TrainConfig) -> None:
    """The evaluation fields of :class:`TrainConfig` (called from its ``validate``)."""
    if cfg.eval_metric not in EVAL_METRICS:
        raise ConfigError(f"eval_metric must be one of {', '.join(EVAL_METRICS)}, got {cfg.eval_metric!r}")
    if cfg.eval_strategy not in EVAL_STRATEGIES:
        raise ConfigError(f"eval_strategy must be one of {', '.join(EVAL_STRATEGIES)}, got {cfg.eval_strategy!r}")
    if cfg.eval_samples < 0:
        raise ConfigError(f"eval_samples must be >= 0, got {cfg.eval_samples}")
    if cfg.eval_generate_records < -1:
        raise ConfigError(f"eval_generate_records must be -1 (all), 0 (none) or a count, got {cfg.eval_generate_records}")
    if cfg.max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {cfg.max_new_tokens}")
    if not 0.0 <= cfg.eval_holdout < 1.0:
        raise ConfigError(f"eval_holdout must be in [0, 1), got {cfg.eval_holdout}")
    if cfg.eval_holdout and cfg.eval_split:
        raise ConfigError("set eval_split or eval_holdout, not both")


def holdout(rows: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(train rows, held-out eval rows): ``fraction`` of the records, chosen by ``seed``, never all of them."""
    if not fraction:
        return rows, None
    n = len(rows)
    k = min(max(1, round(n * fraction)), n - 1)
    if k < 1:
        raise ConfigError(f"eval_holdout {fraction}: {n} training record(s) cannot spare one for evaluation")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = sorted(order[:k])
    keep = sorted(order[k:])
    return rows.select(keep), rows.select(held)


def choose_metric(setting: str, examples: Sequence[EvalExample], manifest_task: str | None = None) -> tuple[str, str]:
    """(metric, why). ``auto``: WER when the dataset was converted with ``--task asr`` or when at least half of
    the eval prompts ask for a transcript (one clip and a transcription request, as lint's R rules decide);
    BLEU when it was converted with ``--task translate``; exact match otherwise."""
    if setting != "auto":
        return setting, "eval_metric"
    if manifest_task == "asr":
        return "wer", "auto: the dataset was converted with --task asr"
    if manifest_task == "translate":
        return "bleu", "auto: the dataset was converted with --task translate"
    asr = sum(e.transcription for e in examples)
    if manifest_task != "none" and examples and asr * 2 >= len(examples):
        return "wer", f"auto: {asr} of {len(examples)} eval prompts ask for a transcript"
    return "exact_match", f"auto: {asr} of {len(examples)} eval prompts ask for a transcript"


def pick(examples: Sequence[EvalExample], limit: int, fixed: int, seed: int) -> tuple[list[int], list[int]]:
    """(positions generated at each evaluation, the fixed samples among them): one order drawn by ``seed``,
    records with audio first for the fixed ones, so the page has clips to play when the eval set has any."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    chosen = order if limit < 0 else order[:limit]
    with_audio = [k for k in chosen if examples[k].clips] + [k for k in chosen if not examples[k].clips]
    return sorted(chosen), sorted(with_audio[:fixed])


# -- one evaluation ----------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """A fixed eval record: shown with its audio at every evaluation."""

    key: int  # position in the examples
    example: EvalExample
    seconds: list[float]
    audio: list[tuple[str, bytes]] = field(default_factory=list)  # (mime, bytes) per clip, for the page


class Evaluator:
    """Generates and scores at every evaluation; owns ``evaluation.jsonl`` and the fixed samples."""

    def __init__(
        self,
        cfg: TrainConfig,
        rows: Any,
        generator: Generator,
        split: str,
        manifest_task: str | None = None,
    ) -> None:
        self.cfg, self.rows, self.gen, self.split = cfg, rows, generator, split
        self.path = Path(cfg.output_dir) / EVAL_LOG
        self.examples, self.without_reply = examples_of(rows, cfg.task)
        self.metric, self.reason = choose_metric(cfg.eval_metric, self.examples, manifest_task)
        limit = cfg.eval_generate_records
        self.chosen, fixed = pick(self.examples, limit, cfg.eval_samples, cfg.seed) if limit else ([], [])
        self.samples = [self._sample(k) for k in fixed]
        self.last_step: int | None = None

    def _sample(self, key: int) -> Sample:
        ex = self.examples[key]
        row = self.rows[ex.row]
        seconds = [float(a.get("duration") or 0.0) for a in row.get("audio_info") or []]
        return Sample(key, ex, seconds, [_playable(a) for a in row.get("audios") or []])

    # -- the log ------------------------------------------------------------------------------------------------
    def start(self, resumed_step: int | None) -> None:
        """Rank 0 empties the log (fresh run) or keeps it up to ``resumed_step`` (resume)."""
        if dist.is_main():
            kept = [e for e in read_log(self.path) if e["step"] <= resumed_step] if resumed_step is not None else []
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept), encoding="utf-8")
            tmp.replace(self.path)
        dist.barrier()

    # -- one evaluation -----------------------------------------------------------------------------------------
    def run(self, model: Any, step: int, epoch: float | None, eval_loss: float | None) -> dict[str, Any] | None:
        """Generate for the chosen records (this rank's share), gather, score, log (rank 0); the log line."""
        if not self.chosen:
            return None
        started = time.time()
        was_training = bool(getattr(model, "training", False))
        model.eval()
        try:
            mine = self._generate_share(model)
        finally:
            if was_training:
                model.train()
        results = _gather(mine)
        hyps = {k: h for k, h in results}
        keys = [k for k in self.chosen if hyps[k].error is None]
        refs = [self.examples[k].reference for k in keys]
        s = score(self.metric, refs, [hyps[k].text for k in keys])
        per = dict(zip(keys, s.per_sample, strict=True))
        line = {
            "step": step,
            "epoch": None if epoch is None else round(float(epoch), 4),
            "eval_loss": eval_loss,
            "metric": self.metric,
            "value": s.value,
            "scored": s.scored,
            "unscored": s.unscored,
            "failed": sum(1 for k in self.chosen if hyps[k].error is not None),
            "no_stop": sum(1 for k in keys if not hyps[k].stopped),
            "template_tokens": sum(1 for k in keys if hyps[k].template_tokens),
            "details": {k: v for k, v in s.to_dict().items() if k not in ("metric", "value", "scored", "unscored")},
            "seconds": round(time.time() - started, 2),
            "samples": [
                {
                    "key": smp.key,
                    "text": hyps[smp.key].text,
                    "score": per.get(smp.key),
                    "stopped": hyps[smp.key].stopped,
                    "template_tokens": hyps[smp.key].template_tokens,
                    "error": hyps[smp.key].error,
                }
                for smp in self.samples
            ],
        }
        self.last_step = step
        if dist.is_main():
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
            value = "-" if s.value is None else f"{s.value:.4f}"
            print(
                f"[audiodata] eval step {step}: {self.metric} {value} on {s.scored} records"
                f" ({line['no_stop']} without a stop token, {line['template_tokens']} with template tokens)",
                file=sys.stderr,
                flush=True,
            )
        return line

    def _generate_share(self, model: Any) -> list[tuple[int, Hypothesis]]:
        """This rank's records, in batches. Every rank makes the same number of ``generate`` calls (ZeRO-3 and
        FSDP gather weights collectively): a rank with fewer records pads its share with the first chosen
        record (audio like the others), whose replies are dropped."""
        rank, world = dist.world()
        mine = self.chosen[rank::world]
        per_rank = math.ceil(len(self.chosen) / world)
        items = [(k, True) for k in mine] + [(self.chosen[0], False)] * (per_rank - len(mine))
        out: list[tuple[int, Hypothesis]] = []
        size = self.gen.batch_size
        for start in range(0, len(items), size):
            keys, encoded = [], []
            for k, real in items[start : start + size]:
                ex = self.examples[k]
                try:
                    enc = self.gen.encode(ex, self.rows[ex.row])
                except Exception as exc:  # audio that does not decode, a template that fails: no hypothesis
                    if real:
                        out.append((k, Hypothesis("", False, error=f"{type(exc).__name__}: {exc}")))
                    continue
                keys.append(k if real else None)
                encoded.append(enc)
            if not encoded:  # nothing encodable in this batch: a stand-in call keeps the ranks in step
                keys, encoded = [None], [self._stand_in()]
            for key, h in zip(keys, self.gen.generate(model, encoded), strict=True):
                if key is not None:
                    out.append((key, h))
        return out

    def _stand_in(self) -> dict[str, Any]:
        """A one-token prompt for a batch where no record could be encoded."""
        import torch

        return {"input_ids": torch.tensor([[self.gen.pad_id]])}

    # -- the report ----------------------------------------------------------------------------------------------
    def section(self, model: Any = None) -> dict[str, Any]:
        """The ``evaluation`` section of train_report.json: settings, the history per evaluation, the samples."""
        history = read_log(self.path)
        samples = []
        for smp in self.samples:
            hyps = []
            for h in history:
                found = next((x for x in h.get("samples", []) if x["key"] == smp.key), None)
                if found is not None:
                    hyps.append({"step": h["step"], **{k: v for k, v in found.items() if k != "key"}})
            ex = smp.example
            samples.append(
                {
                    "key": smp.key,
                    "id": ex.id,
                    "row": ex.row,
                    "prompt": ex.ask,
                    "reference": ex.reference,
                    "clip_seconds": [round(x, 3) for x in smp.seconds],
                    "hypotheses": hyps,
                }
            )
        steps = [{k: v for k, v in h.items() if k != "samples"} for h in history]
        return {
            "split": self.split,
            "metric": self.metric,
            "metric_reason": self.reason,
            "lower_is_better": self.metric in LOWER_IS_BETTER,
            "normalisation": NORMALISATION if self.metric != "bleu" else "sacreBLEU 13a tokenization, case kept",
            "records": len(self.rows),
            "records_without_reply": self.without_reply,
            "generated_per_eval": len(self.chosen),
            "max_new_tokens": self.gen.max_new_tokens,
            "stop_tokens": self.gen.stop_tokens(model),
            "history": steps,
            "final": steps[-1] if steps else None,
            "samples": samples,
        }

    def page_audio(self) -> dict[int, list[tuple[str, bytes]]]:
        return {s.key: s.audio for s in self.samples}

    def write_page(self, report: dict[str, Any]) -> Path:
        from trainer.eval_page import write_eval_page

        return write_eval_page(report, Path(self.cfg.output_dir), self.page_audio())


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _gather(mine: list[tuple[int, Hypothesis]]) -> list[tuple[int, Hypothesis]]:
    """Every rank's (position, hypothesis) pairs on every rank, each position once."""
    import torch.distributed as td

    if not (td.is_available() and td.is_initialized()) or td.get_world_size() == 1:
        return mine
    parts: list[Any] = [None] * td.get_world_size()
    td.all_gather_object(parts, [(k, dataclasses.asdict(h)) for k, h in mine])
    seen: dict[int, Hypothesis] = {}
    for part in parts:
        for k, h in part:
            seen.setdefault(k, Hypothesis(**h))
    return sorted(seen.items())


def _playable(entry: dict[str, Any] | None) -> tuple[str, bytes]:
    """A stored clip as the page plays it: decoded by audiodata's own path (as training decodes it), at most
    ``MAX_EMBED_SECONDS``, written as 16 kHz 16-bit FLAC; ("", b"") when it does not decode."""
    import numpy as np
    import soundfile as sf

    from trainer.data import AudioDecodeError, decode_clip

    rate = 16000
    try:
        pcm = decode_clip(entry, rate)
    except AudioDecodeError:
        return ("", b"")
    pcm = np.clip(pcm[: int(MAX_EMBED_SECONDS * rate)] * 32768.0, -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="FLAC", subtype="PCM_16")
    return ("audio/flac", buf.getvalue())


# -- wiring into the trainer -------------------------------------------------------------------------------------


def attach(
    trainer: Any, cfg: TrainConfig, family: Family, processor: Any, collator: AudioCollator, rows: Any
) -> Evaluator | None:
    """An :class:`Evaluator` on ``rows`` (the eval records) called after every evaluation, or None without any."""
    if rows is None or cfg.eval_generate_records == 0:
        return None
    from transformers import TrainerCallback

    generator = Generator(family, processor, collator, cfg.max_new_tokens, cfg.per_device_batch_size)
    split = cfg.eval_split or f"held out: {len(rows)} of the {cfg.train_split} records (eval_holdout {cfg.eval_holdout})"
    evaluator = Evaluator(cfg, rows, generator, split, _manifest_task(cfg))

    class EvalGenerate(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, metrics: Any = None, **kw: Any) -> None:
            loss = (metrics or {}).get("eval_loss")
            evaluator.run(model if model is not None else trainer.model, state.global_step, state.epoch, loss)
            if dist.is_main():
                evaluator.write_page(progress_report(cfg, family.name, state, evaluator))

    trainer.add_callback(EvalGenerate())
    return evaluator


def progress_report(cfg: TrainConfig, family: str, state: Any, evaluator: Evaluator) -> dict[str, Any]:
    """What eval.html shows while training runs (the final report replaces it at the end)."""
    log = state.log_history
    return {
        "task": cfg.task,
        "model": cfg.model,
        "family": family,
        "steps": state.global_step,
        "loss_history": [{"step": e["step"], "loss": e["loss"]} for e in log if "loss" in e],
        "eval_history": [{"step": e["step"], "eval_loss": e["eval_loss"]} for e in log if "eval_loss" in e],
        "evaluation": evaluator.section(),
        "in_progress": True,
    }


def final_evaluation(run_trainer: Any, evaluator: Evaluator | None) -> None:
    """Evaluate once more at the last step unless the schedule just did (every rank calls it)."""
    if evaluator is None or evaluator.last_step == run_trainer.state.global_step:
        return
    run_trainer.evaluate()


def _manifest_task(cfg: TrainConfig) -> str | None:
    from trainer.config import data_root, is_local

    if not is_local(cfg.data):
        return None
    from audiodata.dataset import DatasetError, load_manifest

    try:
        options = load_manifest(data_root(cfg.data)).options
    except DatasetError:
        return None
    task = options.get("task")
    return task if isinstance(task, str) else None
