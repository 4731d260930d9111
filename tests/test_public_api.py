"""The Python API's manners (issue 13): keyword-only options, no silent drops, typed results, lazy import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import audiodata
from audiodata.pipeline.options import ConvertOptions, OptionsError
from tests.conftest import tone, write_jsonl

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("call", ["convert", "lint", "dedup"])
def test_options_and_loose_keywords_together_are_refused(tmp_path: Path, call: str) -> None:
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    inp = write_jsonl(tmp_path / "in.jsonl", [{"messages": chat}])
    args = [str(inp), str(tmp_path / "out")] if call == "convert" else [str(inp)]
    with pytest.raises(OptionsError, match=r"not both.*num_workers"):
        getattr(audiodata, call)(*args, options=ConvertOptions(), num_workers=1)


@pytest.mark.parametrize("call", ["convert", "lint", "dedup"])
def test_options_are_keyword_only(tmp_path: Path, call: str) -> None:
    args = [str(tmp_path / "in.jsonl"), str(tmp_path / "out")] if call == "convert" else [str(tmp_path / "in.jsonl")]
    with pytest.raises(TypeError):
        getattr(audiodata, call)(*args, ConvertOptions())


def test_dedup_clusters_are_typed_and_agree_with_the_json(tmp_path: Path) -> None:
    import soundfile as sf

    sf.write(tmp_path / "a.wav", tone(1.0, seed=1), 16000)
    rec = {"messages": [{"role": "user", "content": "<audio>what is it"}, {"role": "assistant", "content": "a tone"}],
           "audios": ["a.wav"]}
    report = audiodata.dedup([str(write_jsonl(tmp_path / "in.jsonl", [rec, rec, rec]))], num_workers=1, mode="exact")
    (cluster,) = report.clusters
    assert isinstance(cluster, audiodata.DuplicateCluster)
    assert [m.index for m in cluster.members] == [0, 1, 2]
    assert [m.match for m in cluster.duplicates] == ["exact", "exact"] and not cluster.leak
    (as_json,) = report.to_dict()["clusters"]
    assert as_json["id"] == cluster.id and len(as_json["members"]) == len(cluster.members)


def test_import_is_light() -> None:
    """``import audiodata`` loads none of the heavy libraries; the API arrives on first use."""
    code = "import sys, audiodata; print([m for m in ('datasets', 'pandas', 'pyarrow', 'torch') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout.strip()
    assert out == "[]"
    assert callable(audiodata.convert) and "convert" in dir(audiodata)
    with pytest.raises(AttributeError):
        audiodata.no_such_thing  # noqa: B018


def test_package_is_typed() -> None:
    assert (REPO / "audiodata" / "py.typed").is_file()


def test_api_names_survive_their_namesake_subpackages() -> None:
    """``audiodata.dedup`` is the function even after ``audiodata/dedup/`` (the index package) was imported."""
    code = ("import audiodata.dedup.index, audiodata.pipeline.dedup, audiodata; "
            "from audiodata.dedup.index import ClipIndex; print(audiodata.dedup.__module__, ClipIndex.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout.split()
    assert out == ["audiodata.pipeline.dedup", "audiodata.dedup.index"]


def test_verify_export_publish_are_top_level_functions() -> None:
    code = ("import audiodata.verify, audiodata.export, audiodata.publish, audiodata; "
            "print(*(callable(f := getattr(audiodata, n)) and f.__name__ == n for n in ('verify', 'export', 'publish')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout.split()
    assert out == ["True", "True", "True"]
