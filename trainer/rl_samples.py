"""The fixed prompts of a GRPO run: the same few records, completed greedily and rewarded at step 0, every
``rl_sample_steps`` and at the end, so ``rl.html`` shows how the policy's answer to each changed.

Training completions are sampled (temperature) and drawn from a shuffled order, so no two steps show the same
prompt; a fixed set with greedy decoding is what makes "this answer got better" visible. The records are chosen
once by ``seed`` (records with audio first, as the evaluation page does, trainer/evaluate.py ``pick``); each rank
generates its share and every rank gathers the whole, so only rank 0's copy is written but no rank waits idle.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from trainer.data import SkipExample
from trainer.evaluate import _gather, _playable, pick
from trainer.generation import EvalExample, Generator, Hypothesis
from trainer.rewards import RewardFunc, score


class FixedPrompts(TrainerCallback):
    def __init__(self, cfg: Any, family: Any, processor: Any, collator: Any, rows: Any, rewards: list[RewardFunc]) -> None:
        self.cfg, self.rows, self.rewards = cfg, rows, rewards
        self.weights = cfg.reward_weight_list
        self.every = cfg.rl_sample_steps or cfg.logging_steps
        self.gen = Generator(family, processor, collator, cfg.max_completion_length, max(1, cfg.per_device_batch_size))
        examples = [_example(i, r) for i, r in enumerate(rows.select_columns(_columns(rows)))]
        _, fixed = pick(examples, -1, cfg.rl_samples, cfg.seed) if cfg.rl_samples else ([], [])
        self.examples = [examples[k] for k in fixed]
        self.history: dict[int, list[dict[str, Any]]] = {e.row: [] for e in self.examples}
        self.done: set[int] = set()

    # -- the callback ------------------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if model is not None and state.global_step == 0:
            self.sample(model, 0)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if model is not None and state.global_step % self.every == 0:
            self.sample(model, state.global_step)

    # -- one sampling ------------------------------------------------------------------------------------------
    def sample(self, model: Any, step: int, final: bool = False) -> None:
        """Greedy completions of the fixed prompts by ``model`` now, rewarded, kept under ``step`` (once per step)."""
        import torch.distributed as td

        if not self.examples or step in self.done:
            return
        self.done.add(step)
        rank, world = (td.get_rank(), td.get_world_size()) if td.is_available() and td.is_initialized() else (0, 1)
        unwrapped = getattr(model, "module", model)
        training = unwrapped.training
        unwrapped.eval()
        mine: list[tuple[int, Hypothesis]] = []
        try:
            share = [k for k in range(len(self.examples)) if k % world == rank]
            for at in range(0, len(share), self.gen.batch_size):
                keys, encoded = [], []
                for k in share[at : at + self.gen.batch_size]:
                    try:
                        encoded.append(self.gen.encode(self.examples[k], self.rows[self.examples[k].row]))
                        keys.append(k)
                    except SkipExample as exc:  # a clip that does not decode: shown as such, never generated for
                        mine.append((k, Hypothesis("", True, error=str(exc))))
                if encoded:
                    mine += list(zip(keys, self.gen.generate(unwrapped, encoded), strict=True))
        finally:
            unwrapped.train(training)
        done = _gather(mine)
        rows = [self.rows[self.examples[k].row] for k, _ in done]
        completions = [[{"role": "assistant", "content": h.text}] for _, h in done]
        columns = {c: [r.get(c) for r in rows] for c in ("answer", "choices", "task", "meta") if c in self.rows.column_names}
        scored = score(self.rewards, self.weights, completions, columns)
        for (k, h), s in zip(done, scored, strict=True):
            if h.error:
                s = {"rewards": dict.fromkeys(s["rewards"]), "reward": None}
            entry = {"step": step, "text": h.text, "stopped": h.stopped, "template_tokens": h.template_tokens, **s}
            self.history[self.examples[k].row].append({**entry, "error": h.error, "final": final})

    # -- for the report and the page ---------------------------------------------------------------------------
    def section(self) -> list[dict[str, Any]]:
        out = []
        for e in self.examples:
            row = self.rows[e.row]
            out.append(
                {
                    "key": e.row,
                    "id": e.id,
                    "prompt": e.ask,
                    "answer": row.get("answer"),
                    "choices": row.get("choices"),
                    "task": row.get("task"),
                    "clip_seconds": [float(a.get("duration") or 0.0) for a in row.get("audio_info") or []],
                    "completions": self.history[e.row],
                }
            )
        return out

    def page_audio(self) -> dict[int, list[tuple[str, bytes]]]:
        return {e.row: [_playable(a) for a in self.rows[e.row].get("audios") or []] for e in self.examples}


def _columns(rows: Any) -> list[str]:
    return [c for c in ("id", "prompt", "answer") if c in rows.column_names]


def _example(i: int, r: dict[str, Any]) -> EvalExample:
    prompt = list(r.get("prompt") or [])
    clips = sum(str(m.get("content") or "").count("<audio>") for m in prompt)
    return EvalExample(i, r.get("id"), prompt, str(r.get("answer") or ""), clips, False)

