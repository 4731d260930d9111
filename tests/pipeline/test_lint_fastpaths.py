"""The shortcuts lint's hot path takes (issue 15) give what the long way gives, for any input."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiodata.pipeline.fused import Fused, path_identity
from audiodata.readers.dialects.common import MAX_NAME_BYTES, MAX_PATH_BYTES, _impossible_path
from audiodata.records import Message, Record, SourceLoc
from audiodata.rules.record_rules import _BAD_TEXT, _TOKEN_PIECES, SPECIAL_TOKENS, broken_text

PATHS = st.one_of(
    st.text(alphabet="/.ab", max_size=16),  # every mix of separators, dots and names
    st.text(max_size=40).map(lambda s: "/" + s),
    st.sampled_from(["/", "//", "///a", "/a/", "/a/./b", "/a/../b", "/a/.hidden", "/a//b", "/a/b.wav", "a/b", "./a", ""]),
)


@settings(max_examples=2000, deadline=None)
@given(PATHS)
def test_normpath_shortcut_is_normpath(path: str) -> None:
    """An audio path's identity (D001/D003): the shortcut for paths normpath leaves alone is normpath."""
    assert path_identity("", path) == "path:" + os.path.normpath(path)


ROOTS = st.sampled_from(["/", "//", "/data", "/data/", "/a/./b", "/a/../b", "/a//b/", "/x/.cache", "rel", ".", "", "../up"])


@settings(max_examples=3000, deadline=None)
@given(ROOTS, PATHS.filter(bool))
def test_fused_identity_is_the_joined_normpath(root: str, path: str) -> None:
    """The fused pass's shortcut (the root normalised once, a plain relative path appended) is the identity the
    general path gives an audio path: normpath of the path joined to the media root."""
    assert Fused(root, True, "none").identity(path) == "path:" + os.path.normpath(os.path.join(root, path))


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


TOKEN_BITS = ["<", ">", "|", "/", "(", ")", ".", "_", "\n", "a", "AUDIO", "IMAGE", "audio", "spk", "start", "end", "bos"]
TOKEN_BITS += ["pad", "audio_bos", "audio_start", "spk_end", "<audio>", "</audio>", "<|", "|>", "./", "vision_start", "video_pad"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(TOKEN_BITS), max_size=12).map("".join))
def test_every_special_token_holds_a_piece_the_shortcut_looks_for(text: str) -> None:
    """M005 skips the regex when no piece of _TOKEN_PIECES is in the text: any match must hold one."""
    if SPECIAL_TOKENS.search(text):
        assert any(piece in text for piece in _TOKEN_PIECES), text


def test_every_special_token_alternative_is_caught() -> None:
    tokens = ["<|AUDIO|>", "<|audio_bos|>", "<|vision_end|>", "(<audio>./</audio>)", "<audio_start>", "</spk_end>"]
    for token in tokens:
        assert SPECIAL_TOKENS.search(token) and any(piece in token for piece in _TOKEN_PIECES), token


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20))
def test_a_bad_character_is_never_printable_but_ufffd(text: str) -> None:
    """T001 skips the regex for printable text without U+FFFD: every other character it names is not printable."""
    if _BAD_TEXT.search(text):
        assert not text.isprintable() or "\ufffd" in text, repr(text)


@pytest.mark.parametrize("text", ["caf\ufffd", "a\x00b", "tab\there\x7f", "\x1b[0m", "line\nbreak\x0c"])
def test_broken_text_still_fires(text: str) -> None:
    rec = Record("r", "sft", [Message("user", "<audio>hi"), Message("assistant", text)], SourceLoc("in.jsonl", 0, 1))
    assert [f.code for f in broken_text(rec)] == ["T001"]


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=20))
def test_the_fused_pass_bad_bytes_are_t001_characters(text: str) -> None:
    """The fused lint pass looks for T001's characters in ASCII text by deleting bytes: the same answer as the regex."""
    from audiodata.pipeline.fused import _BAD_BYTES

    raw = text.encode()
    assert (len(raw.translate(None, _BAD_BYTES)) != len(raw)) == bool(_BAD_TEXT.search(text))
