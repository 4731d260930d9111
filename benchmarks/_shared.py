"""What every benchmark shares: where the checkout and the cache are, and imports from this checkout.

A benchmark is run as ``python benchmarks/NAME.py``, so Python already puts this folder first on
``sys.path``: siblings (``convert_bench``'s corpus and Stopwatch, ``memory_bench``'s RSS sampling) import
by name. The one path edit left lives here: :func:`use_checkout` makes the checkout's ``audiodata`` and
``trainer`` importable, and can insist that the copy measured is this checkout's rather than another
editable install's.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"


def sibling(name: str) -> ModuleType:
    """Another benchmark module (``convert_bench``, ``lint_bench``, ``memory_bench``) by name."""
    return importlib.import_module(name)


def use_checkout(strict: bool = False) -> None:
    """Make this checkout's ``audiodata``/``trainer`` importable.

    Lenient (default): an installed copy still wins, so ``pip install .`` users measure what they run.
    Strict: this checkout goes first and a copy imported from elsewhere stops the benchmark, for numbers
    that must belong to the code under review.
    """
    root = str(REPO_ROOT)
    if strict:
        if sys.path[:1] != [root]:
            sys.path.insert(0, root)
        import audiodata

        if not Path(audiodata.__file__).resolve().is_relative_to(REPO_ROOT):
            raise SystemExit(f"imported {audiodata.__file__}, not this checkout's audiodata")
    elif root not in sys.path:
        sys.path.append(root)
