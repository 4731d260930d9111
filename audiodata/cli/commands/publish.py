"""``audiodata publish``: a converted dataset to the Hugging Face Hub, resumable (:mod:`audiodata.publish`)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from audiodata.cli.common import EXIT_OK, stderr_console, stdout_console
from audiodata.cli.progress import Bar

if TYPE_CHECKING:
    from rich.console import Console

NAME = "publish"
HELP = "upload a converted dataset to the Hugging Face Hub (resumable, skips what is already there)"
EXIT_UPLOAD_FAILED = 1


def register(subparsers: Any) -> None:
    from audiodata.faults import FAULT_EXIT

    pb = subparsers.add_parser(
        NAME,
        help=HELP,
        epilog="exit codes: 0 uploaded (or nothing to do), 1 the upload failed (re-run to resume), 2 usage error (or a "
        "damaged dataset)" + FAULT_EXIT,
    )
    pb.add_argument("dataset", metavar="DATASET", help="a folder written by `audiodata convert` (on disk or in an object store)")
    pb.add_argument("repo_id", metavar="REPO_ID", help="the dataset repo, e.g. me/my-audio-sft")
    pb.add_argument("--private", action="store_true", help="create the repo private")
    pb.add_argument("--revision", metavar="BRANCH", help="upload to this branch (created if needed)")
    pb.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to the branch")
    pb.add_argument("--token", help="Hub token (default: $HF_TOKEN or the saved login)")
    pb.add_argument("--dry-run", action="store_true", help="print exactly what would be uploaded; upload nothing")
    pb.add_argument("--max-commit-size", default="2GB", help="bytes per commit (default 2GB); each commit is atomic")
    pb.add_argument("--include-rejects", action="store_true", help="also upload rejects.jsonl")
    pb.add_argument("--json", action="store_true", help="print the result as JSON")
    pb.add_argument("--no-progress", action="store_true", help="no progress bar")
    pb.set_defaults(func=run, resume_command=resume)


def resume(args: argparse.Namespace, typed: list[str]) -> tuple[list[str], str]:
    """Finished commits stay on the Hub; a re-run uploads only what is missing."""
    return typed, "finished commits stay on the Hub; to upload the rest, run the same command again"


def run(args: argparse.Namespace) -> int:
    from huggingface_hub.utils import disable_progress_bars

    from audiodata.errors import AudiodataError
    from audiodata.pipeline.options import parse_size
    from audiodata.publish import publish

    disable_progress_bars()  # one bar: ours (huggingface_hub would draw one per batch of files)
    console = stderr_console()
    try:
        with Bar("publishing", "MB", console, disable=args.no_progress, extra=("{task.fields[phase]}",), phase="") as bar:

            def on_progress(phase: str, done: int, total: int) -> None:
                # checking the shards fills the bar once (all a dry run does); then one bar over the upload's
                # two phases: hashing fills the first half, the commits the second
                if phase == "checking":
                    bar.update(completed=done, total=total or None, count=done // 10**6, phase=phase)
                    return
                ahead = total if phase == "uploading" else 0
                bar.update(completed=ahead + done, total=2 * total or None, count=done // 10**6, phase=phase)

            result = publish(
                args.dataset,
                args.repo_id,
                private=args.private,
                revision=args.revision,
                create_pr=args.create_pr,
                token=args.token,
                dry_run=args.dry_run,
                max_commit_bytes=parse_size(args.max_commit_size),
                include_rejects=args.include_rejects,
                on_progress=on_progress,
            )
    except AudiodataError:
        raise  # not a dataset, a damaged one (exit 2), a local file the upload reads failing (exit 3)
    except OSError as exc:
        if exc.filename is not None:
            raise  # a local file, not the network
        return _upload_failed(exc, console)
    except Exception as exc:  # network or Hub errors: finished commits stay, a re-run resumes
        return _upload_failed(exc, console)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK
    _print_publish(result, args)
    return EXIT_OK


def _upload_failed(exc: BaseException, console: Console) -> int:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        msg = f"[bold red]not authorised ({status}):[/] check --token / $HF_TOKEN and access to the repo"
        console.print(msg, soft_wrap=True)
    else:
        console.print(f"[bold red]upload failed:[/] {exc}; run the same command again to resume", soft_wrap=True)
    return EXIT_UPLOAD_FAILED


def _print_publish(result: Any, args: argparse.Namespace) -> None:
    from rich.table import Table

    out = stdout_console()
    verb = "would upload" if result.dry_run else "uploaded"
    t = Table(title=f"audiodata publish {args.dataset} -> {args.repo_id}" + (" (dry run)" if result.dry_run else ""))
    for col in ("file", "bytes", "status"):
        t.add_column(col, justify="right" if col == "bytes" else "left")
    done = {i.path_in_repo for i in result.uploaded}
    for item in result.planned:
        t.add_row(item.path_in_repo, f"{item.size:,}", verb if item.path_in_repo in done else "already there")
    out.print(t)
    out.print(f"{len(result.uploaded)} {verb}, {len(result.skipped)} already there, {len(result.commits)} commit(s)")
    if result.pr_url:
        out.print(f"pull request: {result.pr_url}")
