"""Thin SFT/DPO trainers over transformers, TRL and PEFT (filled by the trainer issue)."""
