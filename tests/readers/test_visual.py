"""Omni and vision corpora: images and videos are kept with the audio, end to end.

The records are written here in LLaMA-Factory's own forms (mirror hiyouga/LLaMA-Factory @ ff6d4d1):

* ``data/dataset_info.json`` lines 69-83, entry ``mllm_video_audio_demo``: sharegpt formatting, columns
  ``messages``/``videos``/``audios``, tags ``role``/``content``/``user``/``assistant`` (Qwen2.5-Omni);
* ``data/mllm_video_audio_demo.json`` line 5: a user turn ``"<video><audio>What is the video describing?"`` with
  ``"videos": ["mllm_demo_data/4.mp4"]`` and ``"audios": ["mllm_demo_data/4.mp3"]``;
* ``data/dataset_info.json`` lines 27-33, entry ``mllm_demo``: the same with an ``images`` column and ``<image>``.

The image is a PNG made here, the video an MP4 made here (PyAV, FFmpeg's libraries), the audio a real
espeak-ng clip from ``sample_data/``. Counting follows ``src/llamafactory/data/mm_plugin.py``
``_validate_messages`` (lines 189-216) and the Qwen2.5-Omni ``use_audio_in_video`` checks (lines 3016-3031).
"""

from __future__ import annotations

import base64
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
from jsonschema import Draft202012Validator

import audiodata
from audiodata.export import export
from audiodata.pipeline.options import ConvertOptions, OptionsError
from audiodata.pipeline.read import visual_media
from audiodata.readers.dialects import parse_record
from audiodata.readers.dialects.common import ParseContext
from audiodata.readers.sources import expand
from audiodata.readers.spec import DialectSpec
from audiodata.records import Message, Record, SourceLoc
from audiodata.rules.engine import check_record
from audiodata.verify import verify
from audiodata.visual import VisualError, store_visual
from tests.conftest import REPO, SAMPLE, tree_bytes, write_png, write_video

TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
MP3 = SAMPLE / "audio" / "clip14_24k.mp3"


def turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def omni(question: str, answer: str, video: str = "mllm_demo_data/4.mp4", audio: str = "mllm_demo_data/4.mp3") -> dict:
    """One record of LLaMA-Factory's mllm_video_audio_demo form."""
    msgs = [turn("user", f"<video><audio>{question}"), turn("assistant", answer)]
    return {"messages": msgs, "videos": [video], "audios": [audio]}


def vision(question: str, answer: str, image: str = "mllm_demo_data/1.png") -> dict:
    """The mllm_demo form with an audio question (a spoken question about a picture)."""
    msgs = [turn("user", f"<image><audio>{question}"), turn("assistant", answer)]
    return {"messages": msgs, "images": [image], "audios": ["mllm_demo_data/4.mp3"]}


def entry(file_name: str, *media: str) -> dict[str, Any]:
    columns = {"messages": "messages", **{m: m for m in media}}
    return {"file_name": file_name, "formatting": "sharegpt", "columns": columns, "tags": TAGS}


def make_corpus(root: Path, omni_records: list[dict], vision_records: list[dict] | None = None) -> Path:
    """A dataset_info.json folder like LLaMA-Factory's data/, with the media under mllm_demo_data/."""
    media = root / "mllm_demo_data"
    media.mkdir(parents=True, exist_ok=True)
    write_video(media / "4.mp4")
    write_video(media / "5.mp4", seconds=2.0, audio=False)
    shutil.copy(MP3, media / "4.mp3")
    write_png(media / "1.png")
    info = {"omni_demo": entry("omni.json", "videos", "audios")}
    (root / "omni.json").write_text(json.dumps(omni_records, indent=2))
    if vision_records is not None:
        info["vision_demo"] = entry("vision.json", "images", "audios")
        (root / "vision.json").write_text(json.dumps(vision_records, indent=2))
    (root / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return root / "dataset_info.json"


OMNI = [
    omni("What is the video describing?", "A bar slides from left to right."),
    omni("What does the speaker say?", "A short sentence read by a synthetic voice."),
]
VISION = [
    {"messages": [turn("user", "<audio>What is said?"), turn("assistant", "A sentence.")], "audios": ["mllm_demo_data/4.mp3"]},
    vision("What is in this picture?", "Coloured noise."),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("omni") / "data", OMNI, VISION)


@pytest.fixture(scope="module")
def embedded(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("embed") / "out"
    result = audiodata.convert([str(corpus)], out, num_workers=1)
    assert (result.records_written, result.records_rejected) == (4, 0), result.rejects_by_code
    return out


def rows(out: Path) -> list[dict[str, Any]]:
    return [r for p in sorted((out / "data").rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def parse(obj: dict, spec: DialectSpec | None = None) -> Record:
    record, findings = parse_record(obj, ParseContext(spec or DialectSpec(), SourceLoc("in.json", 0, 1), "."))
    assert record is not None, findings
    return record


def refs(record: Record) -> dict[str, list[tuple[str, str, str]]]:
    return {name: [(r.kind, str(r.value), r.field) for r in getattr(record, name)] for name in ("audios", "images", "videos")}


# -- reading ---------------------------------------------------------------------------------------


def test_sharegpt_omni_record_keeps_its_videos_and_audios() -> None:
    spec = DialectSpec("sharegpt", columns={"messages": "messages", "videos": "videos", "audios": "audios"}, tags=TAGS)
    rec = parse(OMNI[0], spec)
    assert refs(rec) == {
        "audios": [("path", "mllm_demo_data/4.mp3", "audios[0]")],
        "images": [],
        "videos": [("path", "mllm_demo_data/4.mp4", "videos[0]")],
    }
    assert check_record(rec) == []  # M004 used to say "the record has no videos" here
    # a dataset_info entry may name the columns anything (columns.images / columns.videos)
    spec = DialectSpec("sharegpt", columns={"messages": "messages", "images": "pictures", "videos": "clips"}, tags=TAGS)
    rec = parse({"messages": OMNI[0]["messages"], "clips": "a.mp4", "pictures": [], "audios": ["a.mp3"]}, spec)
    assert refs(rec)["videos"] == [("path", "a.mp4", "clips")] and rec.images == []


def test_alpaca_and_messages_dialects_read_images_and_videos() -> None:
    rec = parse({"instruction": "<image><audio>Describe.", "output": "x", "images": ["p.png"], "audios": ["a.wav"]})
    assert (rec.dialect, refs(rec)["images"]) == ("alpaca", [("path", "p.png", "images[0]")])
    # ms-swift: images/videos, or the singular keys its preprocessor also maps (swift/dataset/preprocessor/core.py)
    swift = {"messages": [turn("user", "<video><audio>q"), turn("assistant", "a")], "video": "v.mp4", "audios": ["a.wav"]}
    assert refs(parse(swift))["videos"] == [("path", "v.mp4", "video")]
    # chat-template content items with a value: the marker in place, the reference in marker order
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    content = [
        {"type": "image_url", "image_url": {"url": png}},
        {"type": "video", "video": "v.mp4"},
        {"type": "audio", "audio": "a.wav"},
        {"type": "image", "image": {"bytes": base64.b64encode(b"raw").decode(), "path": "b.jpg"}},
        {"type": "text", "text": "Compare."},
    ]
    rec = parse({"messages": [{"role": "user", "content": content}, turn("assistant", "a")]})
    assert rec.messages[0].content == "<image><video><audio><image>Compare."
    assert refs(rec)["images"] == [
        ("data_uri", png, "messages[0].content[0].image_url.url"),
        ("base64", "cmF3", "messages[0].content[3].image.bytes"),
    ]
    assert refs(rec)["videos"] == [("path", "v.mp4", "messages[0].content[1].video")]
    assert rec.images[1].name == "b.jpg"
    # value-less items are markers whose media come from the list
    bare = {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "audio"}]}, turn("assistant", "a")]}
    rec = parse({**bare, "images": ["p.png"], "audios": ["a.wav"]})
    assert refs(rec)["images"] == [("path", "p.png", "images[0]")] and check_record(rec) == []


@pytest.mark.parametrize(
    ("obj", "code", "field"),
    [
        (  # both inside the messages and in the list: which order would be meant?
            {"messages": [{"role": "user", "content": [{"type": "image", "image": "a.png"}]}], "images": ["b.png"]},
            "S001",
            "messages",
        ),
        ({**OMNI[0], "videos": [["f0.jpg", "f1.jpg"]]}, "S032", "videos[0]"),  # frames: LLaMA-Factory takes them, Video cannot
        ({**OMNI[0], "videos": [{"size": 3}]}, "S001", "videos[0]"),
    ],
)
def test_unreadable_visual_references_are_located(obj: dict, code: str, field: str) -> None:
    record, findings = parse_record(obj, ParseContext(DialectSpec(), SourceLoc("in.json", 0, 1), "."))
    assert record is None
    assert [(f.code, f.field) for f in findings] == [(code, field)]
    assert "video" in findings[0].message or "image" in findings[0].message


# -- M004 and M006, held against LLaMA-Factory's own checks ---------------------------------------------


def rec_of(*turns: tuple[str, str], images: int = 0, videos: int = 0, audios: int = 0, kind: str = "sft", **kw: Any) -> Record:
    from audiodata.records import MediaRef

    def media(name: str, n: int) -> list[MediaRef]:
        return [MediaRef("path", f"{name}{i}", f"{name}[{i}]") for i in range(n)]

    msgs = [Message(r, c, f"messages[{i}].content") for i, (r, c) in enumerate(turns)]
    where = SourceLoc("in.json", 0, 1)
    return Record("r", kind, msgs, where, media("audios", audios), media("images", images), media("videos", videos), **kw)


def fired(rec: Record, code: str) -> list[tuple[str, str]]:
    return [(f.field, f.message) for f in check_record(rec, [code])]


def test_m004_counts_references_per_medium_and_locates_the_first_unmatched() -> None:
    assert fired(rec_of(("user", "<image><image>a"), ("assistant", "b"), images=2), "M004") == []
    assert fired(rec_of(("user", "<video>a"), ("assistant", "b<video>"), videos=2), "M004") == []  # over the whole SFT turn list
    two_turns = (("user", "<image>a"), ("assistant", "b"), ("user", "again <image>"), ("assistant", "c"))
    missing = fired(rec_of(*two_turns, images=1), "M004")
    assert missing == [("messages[2].content", "messages hold 2 <image> marker(s) for 1 image(s)")]
    surplus = fired(rec_of(("user", "<video>a"), ("assistant", "b"), videos=3), "M004")
    assert surplus == [("videos[1]", "messages hold 1 <video> marker(s) for 3 video(s)")]
    both = fired(rec_of(("user", "<image>a"), ("assistant", "b"), videos=1), "M004")
    assert [f for f, _ in both] == ["messages[0].content", "videos[0]"]
    # DPO: prompt + chosen and prompt + rejected are each validated (data/processor/pairwise.py)
    dpo = rec_of(
        ("user", "<image>q"),
        images=1,
        kind="dpo",
        chosen=[Message("assistant", "x", "chosen.content")],
        rejected=[Message("assistant", "see <image>", "rejected.content")],
    )
    assert fired(dpo, "M004") == [("rejected.content", "prompt + rejected hold 2 <image> marker(s) for 1 image(s)")]


def lf_modules(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """LLaMA-Factory's data code (installed --no-deps). Its mm_plugin imports torchaudio, which has no wheel
    for this torch: a stub stands in (the checking code never touches audio). transformers is imported
    first so that its own availability checks see the real environment."""
    if importlib.util.find_spec("llamafactory") is None:
        pytest.skip("llamafactory is not installed (make test installs it)")
    import transformers  # noqa: F401

    if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
        stub = types.ModuleType("torchaudio")
        stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
        monkeypatch.setitem(sys.modules, "torchaudio", stub)
    from llamafactory.data import converter, mm_plugin, parser

    return SimpleNamespace(converter=converter, mm_plugin=mm_plugin, parser=parser)


CONTENTS = [
    "<video><audio>What is the video describing?",
    "<audio><video>What is said?",
    "<video>Describe.",
    "<video><audio><video><audio>Compare both.",
    "<video><video><audio><audio>Compare both.",
    "<video><audio><audio>Two sounds?",
    "<image><audio>Who speaks?",
]


@pytest.mark.parametrize("content", CONTENTS)
def test_m004_and_m006_agree_with_llamafactory(content: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lf = lf_modules(monkeypatch)
    import torch

    n = {m: content.count(f"<{m}>") for m in ("image", "video", "audio")}
    messages = [turn("user", content), turn("assistant", "An answer.")]
    images, videos, audios = ([f"{m}{i}" for i in range(n[m])] for m in ("image", "video", "audio"))
    rec = rec_of(*[(m["role"], m["content"]) for m in messages], images=n["image"], videos=n["video"], audios=n["audio"])
    base = lf.mm_plugin.get_mm_plugin("base", image_token="<|IMAGE|>", video_token="<|VIDEO|>", audio_token="<|AUDIO|>")
    for wrong in ({"images": [*images, "extra.png"]}, {"videos": videos[1:] if videos else ["extra.mp4"]}):  # M004 <=> LF raises
        args = {"images": images, "videos": videos, "audios": audios, **wrong}
        with pytest.raises(ValueError, match="does not match the number"):
            base._validate_messages(messages, args["images"], args["videos"], args["audios"])
        assert fired(rec_of(*[(m["role"], m["content"]) for m in messages], **{k: len(v) for k, v in args.items()}), "M004")
    base._validate_messages(messages, images, videos, audios)
    assert fired(rec, "M004") == []

    # M006 <=> Qwen2.5-Omni with use_audio_in_video raises, or leaves an <audio> unexpanded
    tokens = {"image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>", "audio_token": "<|AUDIO|>"}
    omni_plugin = lf.mm_plugin.get_mm_plugin("qwen2_omni", **tokens)

    def grids(images: list, videos: list, audios: list, processor: Any) -> dict[str, Any]:  # what the processor would measure
        return {
            "image_grid_thw": torch.tensor([[1, 2, 2]] * len(images)),
            "video_grid_thw": torch.tensor([[1, 2, 2]] * len(videos)),
            "video_second_per_grid": torch.ones(len(videos)),
            "feature_attention_mask": torch.ones(len(audios), 10, dtype=torch.long),
        }

    monkeypatch.setattr(omni_plugin, "_get_mm_inputs", grids)
    processor = SimpleNamespace(
        image_processor=SimpleNamespace(merge_size=2),
        video_processor=object(),
        feature_extractor=object(),
        use_audio_in_video=True,
        get_chunked_index=lambda index, n: [(0, len(index))],
    )
    try:
        out = omni_plugin.process_messages(messages, images, videos, audios, processor)
        lf_objects = any("<audio>" in m["content"] or "<video>" in m["content"] for m in out)
    except ValueError as exc:
        assert "audio in video" in str(exc)
        lf_objects = True
    assert bool(fired(rec, "M006")) == (lf_objects and bool(videos)), fired(rec, "M006")


# -- convert: embedded Hub features -----------------------------------------------------------------------


def test_omni_corpus_converts_whole_and_loads_back_typed(embedded: Path, corpus: Path) -> None:
    features = json.loads((embedded / "manifest.json").read_text())["summary"]
    assert (features["images"], features["videos"], features["rejected"]) == (1, 2, 0)
    ds = datasets.load_dataset(str(embedded), split="train")
    assert ds.features["images"] == datasets.List(datasets.Image())
    assert ds.features["videos"] == datasets.List(datasets.Video())
    by_id = {r["id"]: r for r in ds}
    first = by_id["omni-000000"]
    assert first["messages"][0]["content"] == "<video><audio>What is the video describing?"
    assert first["images"] == [] and len(first["audios"]) == 1
    video = first["videos"][0]
    assert video.metadata.num_frames == 5 and tuple(video[0].shape) == (3, 48, 64)  # a torchcodec VideoDecoder
    picture = by_id["vision-000001"]["images"][0]
    assert picture.size == (32, 24)
    assert by_id["vision-000000"]["images"] == [] and by_id["vision-000000"]["videos"] == []
    raw = ds.cast_column("videos", datasets.List(datasets.Video(decode=False)))
    raw = raw.cast_column("images", datasets.List(datasets.Image(decode=False)))
    media = corpus.parent / "mllm_demo_data"
    stored = {r["id"]: r for r in raw}
    assert stored["omni-000001"]["videos"][0]["bytes"] == (media / "4.mp4").read_bytes()  # the original file, unchanged
    assert stored["omni-000001"]["videos"][0]["path"] == "omni-000001_video0.mp4"
    assert stored["vision-000001"]["images"][0]["bytes"] == (media / "1.png").read_bytes()


def test_embedded_output_verifies_and_matches_the_output_schema(embedded: Path) -> None:
    report = verify(embedded)
    assert report.problems == [] and report.rows_checked == 4 and report.clips_checked == 4
    validator = Draft202012Validator(json.loads((REPO / "schemas/output.schema.json").read_text()))
    for row in rows(embedded):
        for key in ("audios", "images", "videos"):
            for item in row[key]:
                item["bytes"] = base64.b64encode(item["bytes"]).decode()
        assert not list(validator.iter_errors(row))
    card = (embedded / "README.md").read_text()
    assert "video" in card.split("---")[1] and "| videos | 2 |" in card and "| images | 1 |" in card


def test_output_is_byte_identical_for_any_worker_count(embedded: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out2"
    audiodata.convert([str(corpus)], out, num_workers=2, batch_size=1)
    assert tree_bytes(out) == tree_bytes(embedded)


def test_audio_only_runs_have_no_visual_columns(tmp_path: Path) -> None:
    # the words "image" and "video" in text are no media: the pre-scan parses such records and finds none
    msgs = [turn("user", "<audio>Is this a video or an image?"), turn("assistant", "Audio.")]
    words = [{"messages": msgs, "audios": [str(MP3)]}]
    (tmp_path / "a.json").write_text(json.dumps(words))
    files = expand([str(tmp_path / "a.json")])
    assert visual_media(files, 2**20) == (False, False, False)  # (images, videos, metadata)
    out = tmp_path / "out"
    audiodata.convert([str(tmp_path / "a.json")], out, num_workers=1)
    assert "images" not in pq.read_schema(next((out / "data").glob("*.parquet"))).names
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert "images" not in summary and "videos" not in summary
    assert "Image" not in (out / "README.md").read_text()
    # a run with videos only gets a videos column, not an images one (TRL reads an images column as a vision dataset)
    (tmp_path / "v.json").write_text(json.dumps([omni("q", "a", str(tmp_path / "mllm_demo_data/4.mp4"), str(MP3))]))
    make_corpus(tmp_path, [])
    out = tmp_path / "out_v"
    assert audiodata.convert([str(tmp_path / "v.json")], out, num_workers=1).records_written == 1
    names = pq.read_schema(next((out / "data").glob("*.parquet"))).names
    assert "videos" in names and "images" not in names


# -- convert: file references --------------------------------------------------------------------------


def test_refs_mode_keeps_paths_relative_to_the_media_root(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs"
    result = audiodata.convert([str(corpus)], out, num_workers=1, visual="refs")
    assert result.records_rejected == 0
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.features["videos"] == datasets.List(datasets.Value("string"))
    got = {r["id"]: (r["images"], r["videos"]) for r in ds}
    assert got["omni-000000"] == ([], ["mllm_demo_data/4.mp4"])
    assert got["vision-000001"] == (["mllm_demo_data/1.png"], [])
    assert verify(out).problems == []
    assert json.loads((out / "manifest.json").read_text())["options"]["visual"] == "refs"


def test_visual_flag_on_the_command_line(corpus: Path, tmp_path: Path) -> None:
    from audiodata.cli.main import main

    argv = ["convert", str(corpus), "-o", str(tmp_path / "o"), "--no-progress", "--num-workers", "1", "--visual", "refs"]
    assert main(argv) == 0
    assert rows(tmp_path / "o")[0]["videos"] == ["mllm_demo_data/4.mp4"]
    with pytest.raises(SystemExit) as exc:  # argparse: not a choice
        main([*argv[:3], str(tmp_path / "o2"), "--visual", "links"])
    assert exc.value.code == 2
    with pytest.raises(OptionsError, match="--visual"):
        ConvertOptions(visual="links")


def test_refs_mode_refuses_what_is_not_a_file(tmp_path: Path) -> None:
    make_corpus(tmp_path, [])
    png = base64.b64encode((tmp_path / "mllm_demo_data/1.png").read_bytes()).decode()
    records = [
        vision("q", "a", image="data:image/png;base64," + png),
        vision("q", "a", image="https://example.com/p.png"),
        vision("q", "a", image="./mllm_demo_data/../mllm_demo_data/1.png"),
    ]
    (tmp_path / "in.json").write_text(json.dumps(records))
    result = audiodata.convert([str(tmp_path / "in.json")], tmp_path / "out", num_workers=1, visual="refs")
    rejects = [json.loads(line) for line in (tmp_path / "out/rejects.jsonl").read_text().splitlines()]
    reasons = [(r["index"], r["reasons"][0]["code"], r["reasons"][0]["field"], r["reasons"][0]["message"]) for r in rejects]
    assert [x[:3] for x in reasons] == [(0, "S032", "images[0]"), (1, "S032", "images[0]")]
    assert "inline data (data_uri)" in reasons[0][3] and "--visual embed" in reasons[0][3]
    assert "a URL" in reasons[1][3]
    assert rejects[0]["record"] == records[0]  # the record is kept whole in rejects.jsonl
    assert result.records_written == 1
    assert rows(tmp_path / "out")[0]["images"] == ["mllm_demo_data/1.png"]  # normalised, relative to the root
    # embed mode stores the same inline image, and the URL is refused with its own words
    result = audiodata.convert([str(tmp_path / "in.json")], tmp_path / "emb", num_workers=1)
    assert (result.records_written, result.rejects_by_code) == (2, {"S032": 1})


# -- path safety, as for audio ---------------------------------------------------------------------------


def test_visual_paths_are_as_safe_as_audio_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_corpus(root, [])
    write_png(tmp_path / "secret.png")
    os.symlink(tmp_path / "secret.png", root / "mllm_demo_data" / "link.png")
    (root / "mllm_demo_data" / "text.png").write_text("not a picture")
    ref = lambda value: audiodata.records.MediaRef("path", value, "images[0]")  # noqa: E731
    cases = {
        "mllm_demo_data/missing.png": "S030",
        "../secret.png": "S031",
        "mllm_demo_data/link.png": "S031",  # a symlink out of the root is refused like a ../ path
        "mllm_demo_data/text.png": "S033",
    }
    for value, code in cases.items():
        with pytest.raises(VisualError) as exc:
            store_visual(ref(value), "image", str(root))
        assert exc.value.code == code, (value, exc.value.message)
    with pytest.raises(VisualError) as exc:  # absolute paths outside the root only with --strict-paths
        store_visual(ref(str(tmp_path / "secret.png")), "image", str(root), allow_absolute=False)
    assert exc.value.code == "S031"
    assert store_visual(ref(str(tmp_path / "secret.png")), "image", str(root)).ext == "png"
    with pytest.raises(VisualError) as exc:  # a picture is not a video
        store_visual(ref("mllm_demo_data/1.png"), "video", str(root))
    assert exc.value.code == "S033"
    with pytest.raises(VisualError) as exc:
        store_visual(ref("mllm_demo_data/4.mp4"), "video", str(root), max_bytes=1000)
    assert exc.value.code == "S034" and "--max-audio-bytes" in exc.value.message
    stored = store_visual(ref("mllm_demo_data/5.mp4"), "video", str(root))
    assert stored.ext == "mp4" and stored.data == (root / "mllm_demo_data/5.mp4").read_bytes()


def test_a_missing_video_rejects_the_record_located(tmp_path: Path) -> None:
    info = make_corpus(tmp_path, [OMNI[0], omni("q", "a", video="mllm_demo_data/gone.mp4")])
    result = audiodata.convert([str(info)], tmp_path / "out", num_workers=1, ignore=["S"])  # S030 cannot be ignored
    assert (result.records_written, result.rejects_by_code) == (1, {"S030": 1})
    reject = json.loads((tmp_path / "out/rejects.jsonl").read_text())
    second = [i for i, line in enumerate((tmp_path / "omni.json").read_text().splitlines(), 1) if line == "  {"][1]
    assert (reject["source"].endswith("omni.json"), reject["index"], reject["line"]) == (True, 1, second)
    assert reject["reasons"][0]["field"] == "videos[0]" and "gone.mp4" in reject["reasons"][0]["message"]


# -- export ------------------------------------------------------------------------------------------


def lf_rows(dest: Path, name: str, lf: SimpleNamespace) -> list[dict[str, Any]]:
    """The exported file as LLaMA-Factory reads it: datasets' json loader, then its own converter."""
    attr = lf.parser.get_dataset_list([name], str(dest))[0]
    data = datasets.load_dataset("json", data_files=str(dest / attr.dataset_name), split="train")
    convert = lf.converter.get_dataset_converter(attr.formatting, attr, SimpleNamespace(media_dir=str(dest)))
    return [convert(example) for example in data]


@pytest.mark.parametrize("form", ["sharegpt", "alpaca"])
def test_llamafactory_export_carries_images_and_videos(
    embedded: Path, corpus: Path, tmp_path: Path, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lf = lf_modules(monkeypatch)
    dest = tmp_path / "lf"
    result = export(embedded, "llamafactory", dest, form=form)
    assert result.records_skipped == 0 and result.records_written == 4
    info = json.loads((dest / "dataset_info.json").read_text())
    (name, entry), = info.items()
    assert entry["columns"]["images"] == "images" and entry["columns"]["videos"] == "videos"
    plugin = lf.mm_plugin.get_mm_plugin("base", image_token="<|IMAGE|>", video_token="<|VIDEO|>", audio_token="<|AUDIO|>")
    converted = lf_rows(dest, name, lf)
    assert len(converted) == 4
    n_videos = 0
    for ex in converted:
        images, videos, audios = (ex[k] or [] for k in ("_images", "_videos", "_audios"))
        for path in [*images, *videos, *audios]:
            assert os.path.isfile(path) and Path(path).resolve().is_relative_to(dest.resolve())
        plugin._validate_messages(ex["_prompt"] + ex["_response"], images, videos, audios)
        n_videos += len(videos)
        for v in videos:
            assert Path(v).parent == Path(audios[0]).parent  # next to the record's audio
    assert n_videos == 2
    exported = sorted(dest.rglob("*.mp4"))
    assert len(exported) == 2
    assert {p.read_bytes() for p in exported} == {(corpus.parent / "mllm_demo_data/4.mp4").read_bytes()}  # as given


def test_ms_swift_and_minicpm_exports(embedded: Path, tmp_path: Path) -> None:
    export(embedded, "ms-swift", tmp_path / "swift")
    (data,) = list((tmp_path / "swift").glob("*.jsonl"))
    recs = [json.loads(line) for line in data.read_text().splitlines()]
    omni_rec = next(r for r in recs if r["id"] == "omni-000000")
    assert list(omni_rec)[:4] == ["messages", "audios", "images", "videos"]
    assert (tmp_path / "swift" / omni_rec["videos"][0]).is_file() and omni_rec["images"] == []
    result = export(embedded, "minicpm", tmp_path / "minicpm")
    assert result.skipped_by_reason.get("minicpm: images and videos are not supported") == 3


def test_refs_outputs_do_not_export_silently(corpus: Path, tmp_path: Path) -> None:
    audiodata.convert([str(corpus)], tmp_path / "refs", num_workers=1, visual="refs")
    result = export(tmp_path / "refs", "llamafactory", tmp_path / "lf")
    reason = "images are file references (convert --visual refs): convert with --visual embed to export them"
    assert result.skipped_by_reason == {reason.replace("images", "videos", 1): 2, reason: 1}
    assert result.records_written == 1  # the audio-only record
