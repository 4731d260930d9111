"""audiodata: audio-text corpora made ready for fine-tuning audio language models.

Layout: ``readers`` (inputs and dialects -> :mod:`records`), ``rules`` (the rule
registry and engine), ``audio`` (resolve, decode, resample once, encode, hash),
``writer`` (schema, Parquet shards, dataset card), ``pipeline`` (convert), ``cli``.
"""

__version__ = "0.1.0"

from audiodata.pipeline.convert import ConvertResult, convert
from audiodata.pipeline.options import ConvertOptions

__all__ = ["ConvertOptions", "ConvertResult", "__version__", "convert"]
