"""The one-lstat resolution of relative media paths inside a job (``load._known_file``) gives what the full
resolution (``realpath`` of every component, outside a job) gives: the same file, the same size, the same errors."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from audiodata.audio import load
from audiodata.audio.load import AudioError, open_ref, resolve_path, roots_resolved_once
from audiodata.records import MediaRef
from tests.conftest import spy_realpath


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """A media root with a plain file, a file behind a folder link and a file link (both inside), a folder link and a
    file link leading out, a dangling link, a folder, and a file only in the input's folder."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    for d in (root / "clips/000", root / "real", root / "corpus", outside):
        d.mkdir(parents=True)
    (root / "clips/000/a.wav").write_bytes(b"a" * 10)
    (root / "real/b.wav").write_bytes(b"b" * 20)
    (root / "linked").symlink_to(root / "real")
    (root / "clips/000/c.wav").symlink_to(root / "real/b.wav")
    (outside / "d.wav").write_bytes(b"d" * 30)
    (root / "away").symlink_to(outside)
    (root / "clips/000/e.wav").symlink_to(outside / "d.wav")
    (root / "clips/000/gone.wav").symlink_to(root / "nothing.wav")
    (root / "corpus/only_here.wav").write_bytes(b"o" * 40)
    return root, root / "corpus"


NAMES = [
    "clips/000/a.wav",
    "./clips/000/a.wav",
    "clips//000/a.wav",
    "linked/b.wav",
    "clips/000/c.wav",
    "clips/000/../000/a.wav",
    "linked/../clips/000/a.wav",
    "away/d.wav",
    "clips/000/e.wav",
    "clips/000/gone.wav",
    "clips/000/missing.wav",
    "clips/000",
    "clips/000/..",
    "../outside/d.wav",
    "only_here.wav",
    "a.wav",
]


def _outcome(raw: str, root: Path, input_dir: Path) -> tuple[str, ...]:
    try:
        src = open_ref(MediaRef(kind="path", value=raw, field="audios[0]"), str(root), 1 << 20, True, str(input_dir))
    except AudioError as exc:
        return ("error", exc.code, exc.message)
    assert src.path is not None
    return ("ok", str(src.path), str(src.path.stat().st_size), str(resolve_path(raw, str(root), True, str(input_dir))))


@pytest.mark.parametrize("raw", NAMES)
def test_a_job_resolves_every_path_as_the_full_resolution_does(tmp_path: Path, raw: str):
    root, input_dir = _tree(tmp_path)
    full = _outcome(raw, root, input_dir)  # outside a job: realpath of every component, every call
    with roots_resolved_once():
        fast = _outcome(raw, root, input_dir)
        again = _outcome(raw, root, input_dir)  # the folder now comes from the job's cache
    assert fast == full == again
    if raw == "clips/000/a.wav":
        assert full[:3] == ("ok", str(root.resolve() / "clips/000/a.wav"), "10")


def test_the_fast_path_is_taken_for_plain_files_and_left_for_links(tmp_path: Path, monkeypatch):
    """A regular file costs one lstat inside a job (its folder resolved once); a link, a missing file or a folder
    goes the full way (which words the error). Without this the equality test above passes on the slow path alone."""
    root, input_dir = _tree(tmp_path)
    taken: list[tuple[str, bool]] = []
    known = load._known_file

    def spy(rel: Path, real_root: Path):
        found = known(rel, real_root)
        taken.append((rel.as_posix(), found is not None))
        return found

    monkeypatch.setattr(load, "_known_file", spy)
    calls = spy_realpath(monkeypatch)
    with roots_resolved_once():
        for raw in ("clips/000/a.wav", "clips/000/a.wav", "clips/000/c.wav", "clips/000/missing.wav", "linked/b.wav"):
            with contextlib.suppress(AudioError):
                resolve_path(raw, str(root), True, str(input_dir))
    assert taken == [
        ("clips/000/a.wav", True),
        ("clips/000/a.wav", True),
        ("clips/000/c.wav", False),
        ("clips/000/missing.wav", False),
        ("linked/b.wav", True),
    ]
    folder = str(root.resolve() / "clips/000")
    assert calls.count(folder) == 1  # the folder resolved once for the job, whatever its clips
    assert not any(c.endswith("a.wav") for c in calls)  # a plain file never goes through realpath
