"""Symlinked audio folders (the cluster layout ``corpus/audio -> /mnt/shared/audio``): followed when
the target lies inside the media root, refused (A002) otherwise with the --media-root that would
accept the path, and that --media-root then does. Nothing else escapes the media root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import audiodata
from audiodata.audio.load import AudioError, resolve_path
from tests.conftest import spy_realpath, write_audio

RECORD = {"messages": [{"role": "user", "content": "<audio>Transcribe."}, {"role": "assistant", "content": "a tone"}]}


def corpus_with_link(tmp_path: Path) -> Path:
    """tmp/shared/audio/x.wav (the real clip), tmp/corpus/audio -> tmp/shared/audio, tmp/corpus/data.jsonl."""
    write_audio(tmp_path / "shared/audio/x.wav", seconds=1.0)
    (tmp_path / "corpus").mkdir()
    os.symlink(tmp_path / "shared/audio", tmp_path / "corpus/audio")
    data = tmp_path / "corpus/data.jsonl"
    data.write_text(json.dumps({**RECORD, "audios": ["audio/x.wav"]}) + "\n")
    return data


def rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


def test_link_out_of_the_media_root_is_refused_with_the_root_that_accepts_it(tmp_path: Path):
    data = corpus_with_link(tmp_path)
    result = audiodata.convert([str(data)], tmp_path / "o1", num_workers=1)
    assert result.records_written == 0
    (reason,) = rejects(tmp_path / "o1")[0]["reasons"]
    real_tmp = os.path.realpath(tmp_path)
    assert reason["code"] == "A002" and reason["field"] == "audios[0]"
    # the input was typed absolute: its folder, the media root, is not spelled out (rejects.jsonl travels)
    assert reason["message"] == (
        "path audio/x.wav resolves to <media root>/../shared/audio/x.wav, outside the media root; "
        "--media-root <media root>/.. would accept it"
    )
    audiodata.convert([str(data)], tmp_path / "o1abs", num_workers=1, absolute_paths=True)
    (reason,) = rejects(tmp_path / "o1abs")[0]["reasons"]
    assert reason["message"].endswith(f"outside the media root {real_tmp}/corpus; --media-root {real_tmp} would accept it")

    result = audiodata.convert([str(data)], tmp_path / "o2", num_workers=1, media_root=real_tmp)
    assert (result.records_written, result.records_rejected) == (1, 0)
    assert audiodata.lint([str(data)], num_workers=1, media_root=real_tmp).errors == 0


def test_link_target_inside_the_media_root_is_followed(tmp_path: Path):
    root = tmp_path / "root"
    data = corpus_with_link(root)  # root/corpus/audio -> root/shared/audio: inside --media-root root
    result = audiodata.convert([str(data)], tmp_path / "o", num_workers=1, media_root=str(root))
    assert (result.records_written, result.records_rejected) == (1, 0)


def test_link_target_outside_the_media_root_is_still_refused(tmp_path: Path):
    data = corpus_with_link(tmp_path)
    (tmp_path / "root").mkdir()
    os.replace(tmp_path / "corpus", tmp_path / "root/corpus")  # root/corpus/audio -> tmp/shared/audio, outside root
    data = tmp_path / "root/corpus/data.jsonl"
    result = audiodata.convert([str(data)], tmp_path / "o", num_workers=1, media_root=str(tmp_path / "root"))
    assert result.records_written == 0
    (reason,) = rejects(tmp_path / "o")[0]["reasons"]
    assert reason["code"] == "A002"
    assert reason["message"].endswith("--media-root <media root>/.. would accept it")


def test_the_media_root_wins_over_the_input_folder(tmp_path: Path):
    write_audio(tmp_path / "root/a.wav", seconds=1.0, freq=440.0)
    write_audio(tmp_path / "root/corpus/a.wav", seconds=1.0, freq=880.0)
    assert resolve_path("a.wav", str(tmp_path / "root"), input_dir=str(tmp_path / "root/corpus")) == (tmp_path / "root/a.wav")
    write_audio(tmp_path / "root/corpus/only_here.wav", seconds=1.0)
    found = resolve_path("only_here.wav", str(tmp_path / "root"), input_dir=str(tmp_path / "root/corpus"))
    assert found == tmp_path / "root/corpus/only_here.wav"
    # nothing under the media root and the input folder outside it: not looked for there
    with pytest.raises(AudioError) as err:
        resolve_path("a.wav", str(tmp_path / "empty"), input_dir=str(tmp_path / "root/corpus"))
    assert err.value.code == "A001"


def test_no_hint_when_no_media_root_accepts_the_path_as_written(tmp_path: Path):
    # paths relative to an explicit --media-root media/, the JSON elsewhere, media/audio -> shared/audio
    write_audio(tmp_path / "shared/audio/x.wav", seconds=1.0)
    (tmp_path / "media").mkdir()
    os.symlink(tmp_path / "shared/audio", tmp_path / "media/audio")
    with pytest.raises(AudioError) as err:
        resolve_path("audio/x.wav", str(tmp_path / "media"), input_dir=str(tmp_path / "json"))
    assert err.value.code == "A002" and "--media-root" not in err.value.message  # tmp/audio/x.wav would not be it


def test_strict_paths_hint_for_an_absolute_path(tmp_path: Path):
    write_audio(tmp_path / "shared/x.wav", seconds=1.0)
    (tmp_path / "root").mkdir()
    with pytest.raises(AudioError) as err:
        resolve_path(str(tmp_path / "shared/x.wav"), str(tmp_path / "root"), allow_absolute=False)
    assert err.value.code == "A002"
    assert err.value.message.endswith("--media-root <media root>/.. would accept it")


def test_dotdot_escape_hint_names_the_parent(tmp_path: Path):
    write_audio(tmp_path / "outside.wav", seconds=1.0)
    (tmp_path / "root").mkdir()
    with pytest.raises(AudioError) as err:
        resolve_path("../outside.wav", str(tmp_path / "root"), input_dir=str(tmp_path / "root"))
    assert err.value.code == "A002" and err.value.message.endswith("--media-root <media root>/.. would accept it")
    wider = os.path.realpath(tmp_path)
    assert resolve_path("../outside.wav", wider, input_dir=str(tmp_path / "root")) == Path(wider) / "outside.wav"


def test_dataset_info_entries_resolve_against_the_dataset_dir_only(tmp_path: Path):
    # LLaMA-Factory joins media_dir (default: the dataset_dir) and the path; a file next to the entry's
    # JSON in a subfolder is not found there, so audiodata does not look there either
    lf = tmp_path / "lf"
    write_audio(lf / "sub/clip.wav", seconds=1.0)
    (lf / "sub/data.json").write_text(json.dumps([{**RECORD, "audios": ["clip.wav"]}]))
    entry = {"file_name": "sub/data.json", "formatting": "sharegpt", "columns": {"messages": "messages", "audios": "audios"}}
    entry["tags"] = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    (lf / "dataset_info.json").write_text(json.dumps({"demo": entry}))
    codes = [f.code for f in audiodata.lint([str(lf / "dataset_info.json")], num_workers=1).findings]
    assert "A001" in codes


def test_a_job_resolves_its_media_root_once_and_the_next_job_follows_a_changed_link(tmp_path: Path, monkeypatch):
    """process_batch resolves each media root once per job (roots_resolved_once); a link re-pointed between jobs
    is followed, and outside a job every call resolves the root again."""
    from audiodata.audio.load import roots_resolved_once

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_audio(first / "x.wav")
    root = tmp_path / "root"
    root.symlink_to(first)
    seen = spy_realpath(monkeypatch)
    with roots_resolved_once():
        assert resolve_path("x.wav", str(root)) == first.resolve() / "x.wav"
        assert resolve_path("x.wav", str(root)) == first.resolve() / "x.wav"
    assert seen.count(str(root)) == 1
    root.unlink()
    root.symlink_to(second)
    with roots_resolved_once(), pytest.raises(AudioError) as exc:
        resolve_path("x.wav", str(root))
    assert exc.value.code == "A001"
    seen.clear()
    for _ in range(2):
        with pytest.raises(AudioError):
            resolve_path("x.wav", str(root))
    assert seen.count(str(root)) == 2
