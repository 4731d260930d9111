"""The dataset card (README.md): Hub YAML plus a summary a person reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from audiodata.dataset import ConfigInfo, Summary
from audiodata.writer.schema import NO_VISUAL, Visual, features

#: What each config kind is for, and its columns, for the card's table.
TASKS = {
    "sft": ("SFT", "`messages`"),
    "dpo": ("DPO (preference pairs)", "`prompt`, `chosen`, `rejected`"),
    "kto": ("KTO (unpaired preference)", "`prompt`, `completion`, `label`"),
}


def card_yaml(
    configs: Mapping[str, ConfigInfo], sample_rate: int, license: str = "unknown", visual: Visual = NO_VISUAL
) -> dict[str, Any]:
    """The Hub YAML front matter: ``configs`` (data_files per split) and ``dataset_info`` (features, sizes)."""
    cfg_list, info_list = [], []
    for i, (name, cfg) in enumerate(configs.items()):
        entry: dict[str, Any] = {
            "config_name": name,
            "data_files": [{"split": s, "path": f"{cfg.data_dir}/{s}-*"} for s in cfg.splits],
        }
        if i == 0:
            entry["default"] = True
        cfg_list.append(entry)
        size = sum(v.bytes for v in cfg.splits.values())
        info = {
            "config_name": name,
            "features": features(cfg.kind, sample_rate, visual)._to_yaml_list(),
            "splits": [{"name": s, "num_bytes": v.bytes, "num_examples": v.rows} for s, v in cfg.splits.items()],
            "download_size": size,
            "dataset_size": size,
        }
        info_list.append(info)
    meta: dict[str, Any] = {"configs": cfg_list}
    if len(info_list) == 1 and "default" in configs:
        info_list[0].pop("config_name")
        meta["dataset_info"] = info_list[0]
    else:
        meta["dataset_info"] = info_list
    meta["license"] = license
    meta["task_categories"] = ["audio-text-to-text"]
    meta["tags"] = ["audio", "audiodata"]
    return meta


#: The placeholder the card's loading snippets name the dataset by (tests replace it with a folder).
SOURCE_PLACEHOLDER = "path/or/owner/name"


def render_card(meta: dict[str, Any], summary: Summary) -> str:
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    hours = summary.audio_seconds / 3600
    visual = {name: n for name, n in (("images", summary.images), ("videos", summary.videos)) if n is not None}
    lines = [
        "---",
        head.rstrip(),
        "---",
        "",
        "# Audio dataset",
        "",
        "Prepared with [audiodata](https://github.com/audiodata/audiodata): audio decoded, downmixed to mono, resampled once "
        f"to {summary.sample_rate} Hz and stored losslessly ({summary.codec.upper()}) in the `audios` column.",
        *(
            ["", "Images and videos are kept as the input gave them, in marker order, in the `images`/`videos` columns."]
            if visual
            else []
        ),
        *(_metadata(summary.metadata_keys) if summary.metadata_keys is not None else []),
        "",
        "| | |",
        "|---|---|",
        f"| records | {summary.written} |",
        f"| audio clips | {summary.clips} |",
        f"| audio hours | {hours:.3f} |",
        *[f"| {name} | {n} |" for name, n in visual.items()],
        f"| source sample rates | {_counts(summary.source_sampling_rates, ' Hz')} |",
        f"| source formats | {_counts(summary.source_formats)} |",
        f"| rejected records | {summary.rejected} |",
        f"| duplicates dropped | {summary.duplicates} |",
        "",
        "## Configs and splits",
        "",
        "| config | task | columns (TRL format) | split | records | bytes |",
        "|---|---|---|---|---|---|",
    ]
    for name, cfg in summary.configs.items():
        task, columns = TASKS.get(cfg.kind, (cfg.kind, ""))
        for split, v in cfg.splits.items():
            lines.append(f"| {name} | {task} | {columns} | {split} | {v.rows} | {v.bytes} |")
    labels = summary.kto_labels
    if labels:
        lines += ["", f"KTO labels: {labels.get('desirable', 0)} desirable, {labels.get('undesirable', 0)} undesirable."]
    lines += ["", "## Rejected records", ""]
    if summary.rejects_by_code:
        lines += ["| code | count |", "|---|---|"]
        lines += [f"| {code} | {n} |" for code, n in sorted(summary.rejects_by_code.items())]
        lines += ["", "Each rejected record is kept with its reasons in `rejects.jsonl` next to the data."]
    else:
        lines.append("None.")
    if summary.duplicates:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(summary.duplicates_by_kind.items()))
        lines += ["", "## Duplicates", "", f"{summary.duplicates} later copies were dropped ({kinds}); each is listed in"]
        lines += ["`rejects.jsonl` with the record it duplicates (`audiodata convert --dedup`)."]
    lines += loading_section(summary.configs)
    return "\n".join(lines)


def loading_section(configs: Mapping[str, ConfigInfo]) -> list[str]:
    """How to load the data, in two snippets that run whatever ``datasets`` version is installed: through
    ``audiodata.open`` and through ``datasets`` with the audio left as bytes, both decoding with soundfile
    (tests/writer/test_open.py runs them on a converted dataset)."""
    name, cfg = next(iter(configs.items()), ("default", None))
    split = next(iter(cfg.splits), "train") if cfg is not None else "train"
    config_arg = "" if name == "default" else f', "{name}"'
    source = f'source = "{SOURCE_PLACEHOLDER}"  # this folder, or the Hub dataset id it was published to'
    return [
        "",
        "## Loading",
        "",
        "With [audiodata](https://github.com/audiodata/audiodata): records with every clip decoded by soundfile to a",
        "float32 numpy array and its sampling rate, for any consumer (a TRL collator, a plain script); no torchcodec,",
        "no FFmpeg, whatever `datasets` version is installed:",
        "",
        "```python",
        "import audiodata",
        "",
        source,
        f'for record in audiodata.open(source{config_arg}, split="{split}"):',
        '    clip = record["audios"][0]  # {"array": float32 numpy array, "sampling_rate": ..., "path": ...}',
        "    break",
        "```",
        "",
        "With `datasets` alone, any major version: cast the clips to undecoded bytes (`decode=False`: neither",
        "torchcodec, which `datasets` 4 and later decode with, nor the older decoders are involved) and decode them",
        "with soundfile:",
        "",
        "```python",
        "import io",
        "",
        "import soundfile as sf",
        "from datasets import Audio, Sequence, load_dataset",
        "",
        source,
        f'ds = load_dataset(source{config_arg}, split="{split}")',
        'ds = ds.cast_column("audios", Sequence(Audio(decode=False)))',
        'array, sampling_rate = sf.read(io.BytesIO(ds[0]["audios"][0]["bytes"]), dtype="float32")',
        "```",
        "",
        f"Without the cast, `load_dataset(source{config_arg})` decodes `audios` with the installed version's own decoder",
        "(`datasets` 4 and later: a torchcodec `AudioDecoder` per clip, which needs FFmpeg; earlier: a dict with `array`).",
        "",
        "Each config is in the dataset format its TRL trainer reads without renaming: `SFTTrainer` (conversational",
        "`messages`), `DPOTrainer` (`prompt`/`chosen`/`rejected`), `KTOTrainer` (`prompt`/`completion`/`label`).",
        "TRL's collators do not load audio themselves: pass the `audios` column to the model's processor in your",
        "collator (one clip per `<audio>` marker, in order), or train with `audiodata train`.",
        "",
    ]


def _counts(d: Mapping[str, int], unit: str = "") -> str:
    if not d:
        return "-"
    items = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k}{unit} ({v})" for k, v in items)


def read_card_yaml(text: str) -> dict[str, Any]:
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    return yaml.safe_load(text[3:end]) or {} if end != -1 else {}


def _metadata(keys: Mapping[str, int]) -> list[str]:
    """The card's note on the ``metadata`` column: what it holds and which keys, in how many rows."""
    listed = ", ".join(f"`{k}` ({n})" for k, n in keys.items()) or "none"
    return [
        "",
        "The `metadata` column holds, per row, what the source corpus says beyond the conversation, as a JSON object "
        "(NeMo manifest keys such as `offset`, `duration`, `lang`, `speaker`; a lhotse cut's `cut_id`, `recording_id`, "
        "`start`, `duration`, `channel` and its `supervisions`; a window's `segments`, each with the line it came from). "
        f"Keys, with the rows holding each: {listed}."
        + (
            " `transcript_original` keeps a transcript's text as the corpus wrote it, where "
            "`--normalize-transcripts` changed it, keyed by its place in the row (`messages[1]`, `chosen[0]`, ...)."
            if "transcript_original" in keys
            else ""
        ),
    ]
