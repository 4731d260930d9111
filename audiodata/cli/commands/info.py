"""``audiodata info``: summarise a converted dataset from its manifest, every shard's footer checked."""

from __future__ import annotations

import argparse
import json
from typing import Any

from audiodata.cli.common import EXIT_OK, stdout_console

NAME = "info"
HELP = "summarise a converted dataset"


def register(subparsers: Any) -> None:
    from audiodata.faults import FAULT_EXIT

    i = subparsers.add_parser(
        NAME,
        help=HELP,
        epilog="exit codes: 0 done, 2 not a converted dataset or a damaged one (missing shard, unreadable footer)" + FAULT_EXIT,
    )
    i.add_argument("dataset", metavar="DATASET", help="a folder written by audiodata convert")
    i.add_argument("--json", action="store_true", help="print the manifest summary as JSON")
    i.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from audiodata.dataset import ConvertedDataset
    from audiodata.objstore import readable

    ds = ConvertedDataset.open(readable(args.dataset))  # a folder in an object store: its local copy
    ds.check_shards()  # present, footers read, row counts: a damaged shard is named (verify reads everything)
    s = ds.summary
    if args.json:
        print(json.dumps(s.to_dict(), indent=2))
        return EXIT_OK
    out = stdout_console()
    t = Table(title=f"{args.dataset} (audiodata {ds.manifest.audiodata_version})")
    for col in ("config", "task", "split", "records", "shards", "bytes", "audio hours"):
        t.add_column(col, justify="right" if col not in ("config", "task", "split") else "left")
    for name, cfg in s.configs.items():
        for split, v in cfg.splits.items():
            shards = ds.shards(name, split)
            hours = sum(x.audio_seconds for x in shards) / 3600
            t.add_row(name, cfg.kind, split, str(v.rows), str(len(shards)), f"{v.bytes:,}", f"{hours:.3f}")
    out.print(t)
    labels = s.kto_labels
    if labels:
        out.print(f"KTO labels: {labels.get('desirable', 0)} desirable, {labels.get('undesirable', 0)} undesirable")
    if s.rl_tasks:
        out.print("RL tasks: " + ", ".join(f"{task} x{n}" for task, n in s.rl_tasks.items()))
    out.print(
        f"sample rate {s.sample_rate} Hz ({s.codec}), {s.clips} clips, {s.audio_seconds / 3600:.3f} h; "
        f"read {s.records_read}, written {s.written}, rejected {s.rejected}"
        + (f", equal pairs skipped {s.equal_pairs}" if s.equal_pairs is not None else "")
    )
    if s.source_sampling_rates:
        out.print(
            "source sample rates: "
            + ", ".join(f"{k} Hz x{v}" for k, v in sorted(s.source_sampling_rates.items(), key=lambda kv: int(kv[0])))
        )
    if s.rejects_by_code:
        out.print("rejects by reason: " + ", ".join(f"{k} x{v}" for k, v in s.rejects_by_code.items()))
    return EXIT_OK
