"""audiodata: audio-text corpora made ready for fine-tuning audio language models.

Layout: ``readers`` (inputs and dialects -> :mod:`records`), ``rules`` (the rule registry,
engine, schema check and fixes), ``audio`` (resolve, decode, measure, resample once, encode,
hash), ``dedup`` (fingerprints, the duplicate index), ``writer`` (schema, Parquet shards, dataset
card), ``pipeline`` (read, process, convert, lint, dedup), ``verify``, ``publish``, ``export``,
``cli``; the trainer lives in the top-level ``trainer`` package.

The public names below are imported on first use (PEP 562): ``import audiodata`` stays light, so the
command line starts fast (``audiodata --help`` loads neither ``datasets`` nor pandas).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

import audiodata.dedup as _dedup_package  # noqa: F401  (first: importing it later would rebind audiodata.dedup to it)

#: public name -> the module that defines it
_LAZY = {
    "ConvertOptions": "audiodata.pipeline.options",
    "ConvertResult": "audiodata.pipeline.convert",
    "convert": "audiodata.pipeline.convert",
    "lint": "audiodata.pipeline.lint",
}

if TYPE_CHECKING:
    from audiodata.pipeline.convert import ConvertResult, convert
    from audiodata.pipeline.lint import lint
    from audiodata.pipeline.options import ConvertOptions


def dedup(*args: Any, **kwargs: Any) -> Any:
    """:func:`audiodata.pipeline.dedup.dedup`: duplicate records across inputs, and leaks into a converted dataset.

    A function here rather than a lazy name: the ``audiodata.dedup`` subpackage shares the name, and Python binds a
    subpackage to its parent's attribute when it is first imported (it is imported above, so this binding stands)."""
    from audiodata.pipeline.dedup import dedup as run

    return run(*args, **kwargs)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'audiodata' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(k for k in globals() if k.startswith("__"))})


__all__ = ["ConvertOptions", "ConvertResult", "__version__", "convert", "dedup", "lint"]
