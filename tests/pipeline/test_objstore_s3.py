"""The same through a real S3 protocol: a local S3-compatible server (moto's, on 127.0.0.1, no network) started
and stopped here, read and written by s3fs with the credentials and endpoint taken from the environment. Skipped
when moto[server] or s3fs is not installed (``pip install 'audiodata[s3]' 'moto[server]'``)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import audiodata
from audiodata import objstore
from audiodata.cli.main import main
from tests.conftest import SAMPLE

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

CLIPS = ["clip01_22k.wav", "clip05_8k.wav", "clip07_16k.flac"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.stop()


@pytest.fixture
def s3(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Credentials and endpoint from the environment, as a cluster job would have them; a bucket with a corpus."""
    import s3fs

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server,
        "AUDIODATA_CACHE": str(tmp_path / "cache"),
        "AUDIODATA_REMOTE_BACKOFF": "0",
    }.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": server})
    bucket = f"corpus-{tmp_path.name[-8:].lower().replace('_', '-')}"
    fs.mkdir(bucket)
    lines = [{"messages": [{"role": "user", "content": "<audio>Transcribe."}, {"role": "assistant", "content": f"clip {k}"}],
              "audios": [f"audio/{c}"]} for k, c in enumerate(CLIPS)]  # fmt: skip
    lines.append({"messages": [{"role": "user", "content": "<audio>?"}, {"role": "assistant", "content": "shared"}],
                  "audios": [f"s3://{bucket}/shared/clip09_16k.flac"]})  # fmt: skip
    fs.pipe(f"{bucket}/corpus/train.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode())
    for c in CLIPS:
        fs.pipe(f"{bucket}/corpus/audio/{c}", (SAMPLE / "audio" / c).read_bytes())
    fs.pipe(f"{bucket}/shared/clip09_16k.flac", (SAMPLE / "audio" / "clip09_16k.flac").read_bytes())
    fs.invalidate_cache()
    return fs, bucket


def test_convert_to_and_from_s3_with_etag_checks_and_resume(s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fs, bucket = s3
    src = f"s3://{bucket}/corpus/train.jsonl"
    code = main(["convert", src, "-o", f"s3://{bucket}/out", "--num-workers", "2", "--no-progress",  # forked workers fetch
                 "--allow-remote", f"s3://{bucket}/shared/"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    fs.invalidate_cache()
    man = json.loads(fs.cat_file(f"{bucket}/out/manifest.json"))
    assert man["summary"]["written"] == len(CLIPS) + 1
    assert man["inputs"][0]["file"] == src
    for shard in man["shards"]:  # S3's ETag of a single-part upload is the MD5: what objstore checked it against
        etag = fs.info(f"{bucket}/out/{shard['file']}")["ETag"].strip('"')
        import hashlib

        data = fs.cat_file(f"{bucket}/out/{shard['file']}")
        assert etag == hashlib.md5(data).hexdigest() and hashlib.sha256(data).hexdigest() == shard["sha256"]
    # another machine (empty cache): the complete output is recognised from the store, not built again
    again = audiodata.convert([src], f"s3://{bucket}/out", num_workers=1, allow_remote=[f"s3://{bucket}/shared/"])
    assert again.already_complete and again.records_written == len(CLIPS) + 1
    assert objstore.read_bytes(f"s3://{bucket}/out/README.md").startswith(b"---")


@pytest.mark.slow
def test_ray_engine_reads_and_writes_the_store(s3: Any) -> None:
    """--engine ray with inputs, media and output in S3: each rank a Ray task staging the input and replicating its
    rank folder, the driver merging in the store; the rows are a local pool's."""
    pytest.importorskip("ray")
    from audiodata.pipeline.options import ConvertOptions
    from audiodata.pipeline.rayengine import convert_on_ray, shutdown, start

    fs, bucket = s3
    src, allow = f"s3://{bucket}/corpus/train.jsonl", [f"s3://{bucket}/shared/"]
    pool = audiodata.convert([src], f"s3://{bucket}/pool", num_workers=1, allow_remote=allow, dedup="exact")
    start(None, num_cpus=2)  # after the fixture set the credentials: the cluster's workers inherit them
    try:
        result = convert_on_ray([src], f"s3://{bucket}/ray", options=ConvertOptions(allow_remote=allow, dedup="exact"))
    finally:
        shutdown()
    fs.invalidate_cache()
    assert fs.exists(f"{bucket}/ray/ranks/rank-00001-of-00002/manifest.json")  # really two ranks, in the store
    assert result.output == f"s3://{bucket}/ray" and result.records_written == pool.records_written
    assert fs.cat_file(f"{bucket}/ray/rejects.jsonl") == fs.cat_file(f"{bucket}/pool/rejects.jsonl")
    assert _rows(fs, f"{bucket}/ray") == _rows(fs, f"{bucket}/pool")  # shard boundaries may differ (README), rows never


def _rows(fs: Any, folder: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    out: list[dict[str, Any]] = []
    for shard in json.loads(fs.cat_file(f"{folder}/manifest.json"))["shards"]:
        with fs.open(f"{folder}/{shard['file']}", "rb") as fh:
            out += pq.read_table(fh).to_pylist()
    return out


@pytest.mark.slow
def test_two_ranks_train_from_a_dataset_in_s3(s3: Any, sample_out: Any, tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2 -m trainer train sft --data s3://...``: both ranks of the machine read one local
    copy (they take turns pulling it: the second finds it current) and train on every row, one summed report."""
    pytest.importorskip("trl")
    from tests.training.test_distributed import torchrun
    from trainer.tiny import make_tiny_model

    fs, bucket = s3
    out, _ = sample_out
    fs.put(str(out), f"{bucket}/ds", recursive=True)
    fs.invalidate_cache()
    tiny = make_tiny_model(tmp_path / "tiny", family="qwen2-audio")
    url = f"s3://{bucket}/ds"
    report = torchrun("sft", {"model": tiny, "data": url, "output_dir": tmp_path / "run", "max_steps": 2, "logging_steps": 1,
                              "per_device_batch_size": 2, "save_steps": 1000})  # fmt: skip
    assert report["processes"] == 2 and report["steps"] == 2 and report["data"] == url
    copies = [p.parent for p in (tmp_path / "cache").rglob("manifest.json")]
    assert len(copies) == 1 and (copies[0] / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
