"""Object stores against local disk, side by side in one run: what reading inputs and media from a store and writing
the output to it (audiodata/objstore.py) costs over the same conversion on disk.

Converts one corpus (default: benchmarks/.cache/corpus-200, the first ``--clips`` lines) three ways: on disk;
from and to fsspec's ``memory://`` (the mirror's own cost: staging, one fetch per clip, hashing every transfer,
replicating at each closed shard, with no network); from and to S3 through s3fs against a local S3-compatible
server (moto's, in its own process, so its CPU is not counted; the loopback HTTP cost is). Prints CPU seconds
(this process and its workers) and wall time of each, with their ratios to the disk run and the load average,
and checks the three datasets hold the same rows (source names aside). Ratios are what to compare.

    python benchmarks/objstore_bench.py --clips 200 --json out/objstore.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import CACHE_DIR, command_line, headline, machine, save_results, sibling, use_checkout


def _subset(corpus: Path, clips: int, work: Path) -> tuple[Path, list[str]]:
    """The corpus's first ``clips`` lines as ``work/corpus.jsonl``, and the audio files they name."""
    lines = (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:clips]
    (work / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return work / "corpus.jsonl", [json.loads(line)["audio"] for line in lines]


def _upload(fs: Any, root: str, corpus: Path, jsonl: Path, audio: list[str]) -> None:
    fs.pipe(f"{root}/corpus.jsonl", jsonl.read_bytes())
    for rel in audio:
        fs.pipe(f"{root}/{rel}", (corpus / rel).read_bytes())


def _rows(folder: str) -> list[dict[str, Any]]:
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(f"{folder}/manifest.json", "rb") as fh:
        shards = json.load(fh)["shards"]
    out: list[dict[str, Any]] = []
    for s in shards:
        with fsspec.open(f"{folder}/{s['file']}", "rb") as fh:
            out += [{k: v for k, v in r.items() if k != "source"} for r in pq.read_table(fh).to_pylist()]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _s3_server() -> tuple[subprocess.Popen[bytes], str] | None:
    """moto's S3 server in its own process, or None when moto[server] or s3fs is not installed."""
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        return None
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=CACHE_DIR / "corpus-200", help="a convert_bench corpus folder")
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-shard-size", default="20MB", help="small shards: the mirror replicates at each one")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = p.parse_args(argv)
    use_checkout()
    import fsspec

    import audiodata
    from audiodata.pipeline.options import parse_size

    at_start = machine()
    stopwatch = sibling("convert_bench").Stopwatch
    work = Path(tempfile.mkdtemp(prefix="objstore-bench-"))
    os.environ["AUDIODATA_CACHE"] = str(work / "cache")
    jsonl, audio = _subset(args.corpus, args.clips, work)
    opts = {"num_workers": args.workers, "max_shard_size": parse_size(args.max_shard_size)}
    runs: dict[str, dict[str, float]] = {}
    outputs: dict[str, str] = {}

    def run(name: str, src: str, out: str, media_root: str) -> None:
        with stopwatch() as sw:
            result = audiodata.convert([src], out, media_root=media_root, **opts)
        runs[name] = {"wall_s": sw.wall_s, "cpu_s": sw.cpu_s, "written": result.records_written}
        outputs[name] = out

    run("disk", str(jsonl), str(work / "out"), str(args.corpus))
    mem = fsspec.filesystem("memory")
    _upload(mem, "/bench/in", args.corpus, jsonl, audio)
    run("memory://", "memory://bench/in/corpus.jsonl", "memory://bench/out", "memory://bench/in")
    server = _s3_server()
    if server is not None:
        proc, endpoint = server
        try:
            os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            import s3fs

            s3 = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
            s3.mkdir("bench")
            _upload(s3, "bench/in", args.corpus, jsonl, audio)
            run("s3:// (local server)", "s3://bench/in/corpus.jsonl", "s3://bench/out", "s3://bench/in")
            same_s3 = _rows("s3://bench/out") == _rows(str(work / "out"))
        finally:
            proc.kill()
            proc.wait()
    else:
        same_s3 = None
    same_mem = _rows("memory://bench/out") == _rows(str(work / "out"))
    load = os.getloadavg()[0]
    base = runs["disk"]
    print(f"{args.clips} clips, {args.workers} workers, load {load:.1f}")
    print(f"{'run':<22} {'wall s':>8} {'x disk':>7} {'CPU s':>8} {'x disk':>7} {'written':>8}")
    for name, r in runs.items():
        print(
            f"{name:<22} {r['wall_s']:8.2f} {r['wall_s'] / base['wall_s']:7.2f} {r['cpu_s']:8.2f} "
            f"{r['cpu_s'] / base['cpu_s']:7.2f} {int(r['written']):8d}"
        )
    print(f"same rows as on disk: memory:// {same_mem}, s3:// {same_s3 if same_s3 is not None else 'not run (no moto/s3fs)'}")
    heads = [
        headline(
            f"{name} convert, {args.clips} clips",
            r["cpu_s"] / base["cpu_s"],
            "x disk CPU",
            "the same convert on disk",
            r["cpu_s"] / base["cpu_s"],
            f"wall {r['wall_s'] / base['wall_s']:.2f}x; load {load:.1f}",
        )
        for name, r in runs.items()
        if name != "disk"
    ]
    figures = {"runs": runs, "same_rows": {"memory": same_mem, "s3": same_s3}, "load": load, "clips": args.clips}
    save_results(args.json, "objstore", command_line("objstore_bench.py", argv), at_start, heads, figures)
    return 0 if same_mem and same_s3 is not False else 1


if __name__ == "__main__":
    sys.exit(main())
