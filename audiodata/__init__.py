"""audiodata: audio-text corpora made ready for fine-tuning audio language models.

Layout: ``readers`` (inputs and dialects -> :mod:`records`), ``rules`` (the rule registry,
engine, schema check and fixes), ``audio`` (resolve, decode, measure, resample once, encode,
hash), ``dedup`` (fingerprints, the duplicate index), ``writer`` (schema, Parquet shards, dataset
card), ``pipeline`` (read, process, convert, lint, dedup), ``verify``, ``publish``, ``export``,
``dataset`` (the on-disk format of a converted dataset), ``decoding`` (``audiodata.open``), ``errors``,
``cli``; the trainer lives in the top-level ``trainer`` package.

The public API is imported on first use (``audiodata.convert``), so ``import audiodata`` and the
CLI's ``--help`` stay fast.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_API = {
    "convert": "audiodata.pipeline.convert",
    "ConvertResult": "audiodata.pipeline.convert",
    "merge": "audiodata.pipeline.merge",
    "lint": "audiodata.pipeline.lint",
    "LintReport": "audiodata.pipeline.lint",
    "dedup": "audiodata.pipeline.dedup",
    "DedupReport": "audiodata.pipeline.dedup",
    "DuplicateCluster": "audiodata.pipeline.dedup",
    "DuplicateMember": "audiodata.pipeline.dedup",
    "ConvertOptions": "audiodata.pipeline.options",
    "verify": "audiodata.verify",
    "VerifyReport": "audiodata.verify",
    "export": "audiodata.export",
    "ExportResult": "audiodata.export",
    "publish": "audiodata.publish",
    "open": "audiodata.decoding",
    "ConvertedDataset": "audiodata.dataset",
    "AudiodataError": "audiodata.errors",
}

if TYPE_CHECKING:
    from audiodata.dataset import ConvertedDataset
    from audiodata.decoding import open
    from audiodata.errors import AudiodataError
    from audiodata.export import ExportResult, export
    from audiodata.pipeline.convert import ConvertResult, convert
    from audiodata.pipeline.dedup import DedupReport, DuplicateCluster, DuplicateMember, dedup
    from audiodata.pipeline.lint import LintReport, lint
    from audiodata.pipeline.merge import merge
    from audiodata.pipeline.options import ConvertOptions
    from audiodata.publish import publish
    from audiodata.verify import VerifyReport, verify


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'audiodata' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


class _Package(types.ModuleType):
    """Keeps an API name bound to its function where a submodule has the same name (``dedup``, ``verify``).

    The import system binds a submodule on its parent the first time it loads it; with the API imported
    on use, ``import audiodata.dedup.index`` would otherwise turn ``audiodata.dedup`` into the package.
    The subpackage stays importable by its dotted name (``from audiodata.dedup.index import ...``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "AudiodataError",
    "ConvertOptions",
    "ConvertResult",
    "ConvertedDataset",
    "DedupReport",
    "DuplicateCluster",
    "DuplicateMember",
    "ExportResult",
    "LintReport",
    "VerifyReport",
    "__version__",
    "convert",
    "dedup",
    "export",
    "lint",
    "merge",
    "open",
    "publish",
    "verify",
]
assert sorted(__all__) == sorted([*_API, "__version__"])  # one list of the public names
