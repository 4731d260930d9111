"""audiodata: audio-text corpora made ready for fine-tuning audio language models.

Layout: ``readers`` (inputs and dialects -> :mod:`records`), ``rules`` (the rule registry,
engine, schema check and fixes), ``audio`` (resolve, decode, measure, resample once, encode,
hash), ``dedup`` (fingerprints, the duplicate index), ``writer`` (schema, Parquet shards, dataset
card), ``pipeline`` (read, process, convert, lint, dedup), ``verify``, ``publish``, ``export``,
``dataset`` (the on-disk format of a converted dataset), ``decoding`` (``audiodata.open``), ``errors``,
``cli``; the trainer lives in the top-level ``trainer`` package.
"""

__version__ = "0.1.0"

from audiodata.dataset import ConvertedDataset
from audiodata.decoding import open
from audiodata.pipeline.convert import ConvertResult, convert
from audiodata.pipeline.dedup import dedup
from audiodata.pipeline.lint import lint
from audiodata.pipeline.options import ConvertOptions

__all__ = ["ConvertOptions", "ConvertResult", "ConvertedDataset", "__version__", "convert", "dedup", "lint", "open"]
