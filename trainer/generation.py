"""Generation for evaluation: eval records as prompts and references, and greedy replies cut at the stop token.

An eval record becomes an :class:`EvalExample`: the turns the model sees (the prompt, up to the reply) and
the reply it is compared with (SFT: the last assistant turn; DPO: the chosen reply; KTO: the completion of
a desirable record). :class:`Generator` renders the prompt exactly as training does (the family's chat
template with ``add_generation_prompt``, the system prompt, long clips split by the collator), generates
greedily in left-padded batches, and cuts each reply at its first stop token: EOS, or the token the
template closes an assistant turn with (read from the template itself). Special tokens are kept in the
text, so a reply that runs into a role header (a template or stop token gone wrong) shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audiodata.records import AUDIO_MARKER
from audiodata.rules.transcript import is_transcription_prompt

if TYPE_CHECKING:
    from trainer.collators import AudioCollator
    from trainer.families import Family


@dataclass
class EvalExample:
    """One eval record as a generation task: the turns before the reply, and the reply to compare with."""

    row: int  # index in the eval rows
    id: str | None
    prompt: list[dict[str, str]]  # the messages the model sees (up to the reply)
    reference: str
    clips: int  # audio markers in the prompt
    transcription: bool  # the prompt asks for a transcript (audiodata's transcript-rate rules' test)

    @property
    def ask(self) -> str:
        """The last user turn, as the page shows it."""
        return next((m["content"] for m in reversed(self.prompt) if m["role"] == "user"), "")


def examples_of(rows: Any, task: str) -> tuple[list[EvalExample], int]:
    """Every eval record with a reply to compare against, and how many had none (SFT: the last assistant turn
    is the reference; DPO: the chosen reply; KTO: the completion of desirable records only)."""
    cols = [c for c in ("id", "messages", "chosen", "completion", "label") if c in rows.column_names]
    out: list[EvalExample] = []
    none = 0
    for i, r in enumerate(rows.select_columns(cols)):
        messages = list(r["messages"] or [])
        reply: list[dict[str, str]] | None
        if task == "dpo":
            reply = r.get("chosen")
        elif task == "kto":
            reply = r.get("completion") if r.get("label") is True else None
        else:
            last = max((k for k, m in enumerate(messages) if m["role"] == "assistant"), default=None)
            reply, messages = (None, messages) if last is None else ([messages[last]], messages[:last])
        said = [m["content"] for m in reply or [] if m["role"] == "assistant"]
        if not said or not any(m["role"] == "user" for m in messages):
            none += 1
            continue
        clips = sum(m["content"].count(AUDIO_MARKER) for m in messages)
        users = [m for m in messages if m["role"] == "user"]
        asr = clips > 0 and AUDIO_MARKER in users[-1]["content"] and is_transcription_prompt(users[-1]["content"])
        out.append(EvalExample(i, r.get("id"), messages, said[-1], clips, asr))
    return out, none


@dataclass
class Hypothesis:
    text: str
    stopped: bool  # a stop token ended it (else it ran to max_new_tokens)
    template_tokens: list[str] = field(default_factory=list)  # special tokens of the template inside the reply
    error: str | None = None  # the record could not be generated for (its audio did not decode, ...)


class Generator:
    """Prompts in, greedy replies out, in left-padded batches, for one family, processor and collator."""

    def __init__(self, family: Family, processor: Any, collator: AudioCollator, max_new_tokens: int, batch_size: int) -> None:
        self.family, self.processor, self.collator = family, processor, collator
        self.max_new_tokens, self.batch_size = max_new_tokens, max(1, batch_size)
        self.tok = processor.tokenizer
        self.pad_id = collator.pad_id
        self.stop_ids = self._stop_ids()
        self.special = sorted({t for t in self.tok.all_special_tokens if t} | set(_added_special(self.tok)), key=len)

    def _stop_ids(self) -> list[int]:
        """EOS (tokenizer and generation config) and the token the template closes an assistant turn with."""
        ids: list[int] = []
        if self.tok.eos_token_id is not None:
            ids.append(int(self.tok.eos_token_id))
        probe = "\x00reply\x00"
        conv = self.family.conversation([{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}], None)
        try:
            text = self.collator.render(conv, False)
        except Exception:  # a template that cannot render a reply: EOS alone
            text = ""
        after = text.split(probe, 1)[1].lstrip(" ") if probe in text else ""
        end = self.tok(after, add_special_tokens=False)["input_ids"] if after.strip() else []
        if end:
            ids.append(int(end[0]))
        return list(dict.fromkeys(ids))

    def stop_tokens(self, model: Any = None) -> list[str]:
        return [self.tok.convert_ids_to_tokens(i) for i in self._all_stops(model)]

    def _all_stops(self, model: Any) -> list[int]:
        extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        extra = [] if extra is None else [extra] if isinstance(extra, int) else list(extra)
        return list(dict.fromkeys([*self.stop_ids, *map(int, extra)]))

    def encode(self, example: EvalExample, row: dict[str, Any]) -> dict[str, Any]:
        """The prompt's model inputs, exactly as training renders it (long clips split as the collator does)."""
        audios, windows = self.collator.audios(row)
        n = sum(windows[: example.clips])
        conv = self.family.conversation(example.prompt, self.collator.system(row), windows[: example.clips])
        text = self.collator.render(conv, True)
        return self.family.process(self.processor, text, audios[:n])

    def generate(self, model: Any, encoded: list[dict[str, Any]]) -> list[Hypothesis]:
        """Greedy replies for prompts encoded by :meth:`encode` (one batch, left-padded here)."""
        import torch

        device = _device(model)
        dtype = getattr(model, "dtype", torch.float32)
        width = max(int(e["input_ids"].shape[-1]) for e in encoded)
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for k, e in enumerate(encoded):
            n = int(e["input_ids"].shape[-1])
            ids[k, width - n :] = e["input_ids"][0]
            mask[k, width - n :] = 1
        inputs: dict[str, Any] = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        feats = [e["input_features"] for e in encoded if "input_features" in e]
        if feats:
            inputs["input_features"] = torch.cat(feats).to(device=device, dtype=dtype)
            inputs["feature_attention_mask"] = torch.cat([e["feature_attention_mask"] for e in encoded]).to(device)
        stops = self._all_stops(model)
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=stops,
                pad_token_id=self.pad_id,
                use_cache=True,
            )
        new = out[:, width:].tolist()
        return [self.hypothesis(row, set(stops)) for row in new]

    def hypothesis(self, new_ids: list[int], stops: set[int] | None = None) -> Hypothesis:
        """The reply up to its first stop token, special tokens kept so a leaked template shows."""
        stops = set(self.stop_ids) if stops is None else stops
        cut = next((k for k, t in enumerate(new_ids) if t in stops), None)
        kept = new_ids if cut is None else new_ids[:cut]
        text = self.tok.decode(kept, skip_special_tokens=False)
        leaked = [t for t in self.special if t in text]
        return Hypothesis(text.strip(), cut is not None, leaked)


def _added_special(tok: Any) -> list[str]:
    decoder = getattr(tok, "added_tokens_decoder", None) or {}
    return [str(t) for t in decoder.values() if getattr(t, "special", False)]


def _device(model: Any) -> Any:
    import torch

    dev = getattr(model, "device", None)
    if dev is not None:
        return dev
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
