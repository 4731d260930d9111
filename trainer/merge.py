"""``audiodata train merge``: fold a LoRA adapter into its base model for serving."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.config import ConfigError
from trainer.families import detect_family


def merge(adapter: str, output: str, base: str | None = None) -> Path:
    """Load the base model in its own dtype, apply the adapter, merge the weights and save model + processor.

    The dtype is the checkpoint's (``dtype="auto"``: a bf16 base stays bf16): loading in fp32, as this
    once did, wrote a merged model twice the size of its base."""
    from peft import PeftModel

    cfg_path = Path(adapter) / "adapter_config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{adapter}: no adapter_config.json; is this the output of `audiodata train`?")
    base = base or json.loads(cfg_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{cfg_path} does not name its base model; pass --model")
    family = detect_family(base)
    model = family.load(base, "auto", None)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    out = Path(output)
    merged.save_pretrained(out)
    saved = any((Path(adapter) / name).exists() for name in ("processor_config.json", "tokenizer.json"))
    source = adapter if saved else base  # `audiodata train` saves the processor next to the adapter
    family.load_processor(source).save_pretrained(out)
    return out
