"""The shortcuts lint's hot path takes (issue 15) give what the long way gives, for any input."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from audiodata.pipeline.lint import _normpath
from audiodata.readers.dialects.common import MAX_NAME_BYTES, MAX_PATH_BYTES, _impossible_path

PATHS = st.one_of(
    st.text(alphabet="/.ab", max_size=16),  # every mix of separators, dots and names
    st.text(max_size=40).map(lambda s: "/" + s),
    st.sampled_from(["/", "//", "///a", "/a/", "/a/./b", "/a/../b", "/a/.hidden", "/a//b", "/a/b.wav", "a/b", "./a", ""]),
)


@settings(max_examples=2000, deadline=None)
@given(PATHS)
def test_normpath_shortcut_is_normpath(path: str) -> None:
    """An audio path's identity (D001/D003): the shortcut for paths normpath leaves alone is normpath."""
    assert _normpath(path) == os.path.normpath(path)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=MAX_NAME_BYTES // 4).filter(lambda s: "\x00" not in s))
def test_a_short_path_is_never_impossible(value: str) -> None:
    """What the shortcut in _impossible_path relies on: at most 4 UTF-8 bytes a character, so a path of
    up to MAX_NAME_BYTES // 4 characters fits any file name and path bound."""
    size = len(value.encode("utf-8", "surrogatepass"))
    assert size <= MAX_NAME_BYTES <= MAX_PATH_BYTES
    assert _impossible_path(value) is None


def test_long_and_nul_paths_are_still_impossible() -> None:
    assert _impossible_path("a\x00b") is not None  # short, but with a NUL
    assert _impossible_path("x" * (MAX_NAME_BYTES + 1)) is not None
    assert _impossible_path("ü" * (MAX_NAME_BYTES // 2 + 1)) is not None  # 2 bytes a character: over the name bound
    assert _impossible_path("/".join(["d" * 200] * 21)) is not None  # names fit, the path does not
