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
    "rl": ("RL (GRPO, verifiable answers)", "`prompt`, `answer`, `choices`, `task`, `meta`"),
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
        *(_prompts(summary.prompts) if summary.prompts is not None else []),
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
        *([f"| equal pairs skipped (hypothesis = transcript) | {n} |" for n in (summary.equal_pairs,) if n is not None]),
        *(_metadata(summary.metadata_keys) if summary.metadata_keys is not None else []),
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
    if summary.rl_tasks:
        tasks = ", ".join(f"{n} {task}" for task, n in summary.rl_tasks.items())
        lines += [
            "",
            f"RL tasks: {tasks}. TRL's GRPOTrainer hands every column but `prompt` to the reward functions: they read "
            "`answer` (for multiple choice the option's text; `choices` lists the options A, B, ...), `task` and "
            "`meta` (a JSON object as text) by those names.",
        ]
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


#: What the ``metadata`` keys the raw-corpus readers keep mean (NeMo, lhotse, subtitles, windows); any other key
#: is the corpus's own, kept as it gives it.
METADATA_KEYS = {
    "speaker": "who speaks: the corpus's speaker id",
    "lang": "the transcript's language, as the corpus writes it (NeMo `lang`, a subtitle file's language tag)",
    "language": "the transcript's language, as the corpus writes it",
    "locale": "the transcript's language (Common Voice `locale`)",
    "client_id": "who speaks: Common Voice's anonymised speaker id",
    "speaker_id": "who speaks: the corpus's speaker id",
    "__key__": "the WebDataset sample's key (its members' name without extension)",
    "offset": "segment time: where the clip starts in its recording, seconds (NeMo `offset`)",
    "start": "segment time: where the clip starts in its recording, seconds (lhotse cut `start`)",
    "duration": "segment time: the clip's length, seconds",
    "channel": "the recording's channel(s) the clip is taken from (lhotse)",
    "cut_id": "the lhotse cut's id",
    "recording_id": "the id of the recording the clip is cut from (lhotse)",
    "supervisions": "the lhotse supervisions the transcript joins: their text, times, speaker and language",
    "segments": "the lines (NeMo) or cues (subtitles) a window packs, each with its `line`, times and text",
    "custom": "the lhotse cut's custom fields",
    "audiodata_clips": "`[start, duration]` of each consecutive clip a long recording kept whole was cut into",
    "pred_text": "an ASR hypothesis (NeMo `transcribe_speech.py` output)",
    "source": "the source dataset, as the corpus names it",
    "transcript_original": "a transcript as the corpus wrote it, where `--normalize-transcripts` changed it, keyed by its "
    "place in the row (`messages[1]`, `chosen[0]`, `rejected[0]`, ...)",
}


def _prompts(p: Mapping[str, Any]) -> list[str]:
    """The card's note on how transcript-only records were made instruction data (``--task``/``--template``)."""
    how = f"the `{p['template']}` preset (`--task {p['template']}`)" if p["preset"] else f"the template `{p['template']}`"
    pool = list(p["user"])
    out = [
        "",
        f"Transcript-only source records (ASR manifests, dataset rows) were turned into instructions by {how}: "
        + (
            f"each record's user prompt is one of these {len(pool)}, drawn by a hash of seed {p['seed']} and the record's id "
            "(`<audio>` marks the clip; `{name}` is filled from the record's own columns)"
            if len(pool) > 1
            else ("the user prompt is the same for every record" if pool else "the user turn is the audio alone")
        )
        + (" where the record had no prompt of its own." if p["preset"] else "."),
    ]
    if pool:
        out += ["", *[f"- `{u}`" for u in pool]]
    reply = f"the `{p['assistant']}` column" if p["assistant"] else "the transcript"
    out += ["", f"The assistant reply is {reply}."]
    if p["system"]:
        out[-1] += f" System prompt (where the record had none): `{p['system']}`."
    if p["defaults"]:
        given = ", ".join(f"`{k}` = {v}" for k, v in p["defaults"].items())
        out[-1] += f" Placeholders a record had no column for: {given}."
    return out


def _metadata(keys: Mapping[str, int]) -> list[str]:
    """The card's section on the ``metadata`` column: what it holds and each key, in how many rows, with its meaning
    (speaker, language, segment times, the source recording)."""
    lines = [
        "",
        "## Metadata",
        "",
        "The `metadata` column holds, per row, what the source corpus says beyond the conversation, as a JSON object "
        "(`json.loads(row[\"metadata\"])`). Where each clip comes from is also in `audio_info[].origin` (the source "
        "file, with `#t=start,end` for a segment of a longer recording), and which input record it was in the "
        "`source` column (file, index, line).",
        "",
    ]
    if not keys:
        return [*lines, "No row holds any key."]
    lines += ["| key | rows | what it holds |", "|---|---|---|"]
    lines += [f"| `{k}` | {n} | {METADATA_KEYS.get(k, 'kept as the corpus gives it')} |" for k, n in keys.items()]
    return lines
