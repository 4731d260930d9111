"""The checks of ``audiodata verify`` (family ``V``): a converted dataset's files against its manifest.

They are checks over a dataset's files, not over records, so they carry no check function (stage
``output``): :mod:`audiodata.verify` runs them while it streams the shards and reports each with
its code, located to the file, row and clip. Registering them here puts them in ``audiodata rules``
and ``docs/rules.md`` with every other check, and keeps one code space.
"""

from __future__ import annotations

from audiodata.rules.registry import RuleDoc, Severity, register

_RECONVERT = "Convert the inputs again (or restore the folder from the copy that verifies)."


def _v(code: str, name: str, summary: str, what: str, why: str, fix: str, example: str) -> None:
    register(code, name, Severity.ERROR, summary, stage="output", doc=RuleDoc(what, why, fix, example))


_v(
    "V001",
    "manifest-unreadable",
    "manifest.json missing or unreadable (raised as VerifyError: usage error, exit 2)",
    "The folder has a `manifest.json` that parses as JSON and lists every shard with its file, config, split, rows, "
    "bytes, sha256 and clips, and the summary's sample rate.",
    "The manifest is what every other check compares against; without it the folder is not a converted dataset "
    "that audiodata can vouch for.",
    "Point verify at the folder `audiodata convert -o` wrote; if the manifest was edited or truncated, convert again.",
    "`audiodata verify some/folder` on a folder without manifest.json.",
)
_v(
    "V002",
    "shard-missing",
    "a shard listed in the manifest is missing",
    "Every shard `manifest.json` lists exists under the folder.",
    "A partial copy or sync leaves the card promising rows that are not there; the Hub loader fails or trains on less.",
    "Copy the missing shard again from the source folder. " + _RECONVERT,
    "`data/sft/train-00000-of-00001.parquet` deleted after convert.",
)
_v(
    "V003",
    "shard-unlisted",
    "a Parquet file in data/ is not listed in the manifest",
    "No Parquet file under `data/` is missing from `manifest.json`.",
    "A stray or leftover shard (an older run, a copy) is picked up by the card's globs and loaded as training data "
    "that no manifest accounts for.",
    "Delete the stray file, or convert into a fresh folder.",
    "A copy `data/sft/train-00001-of-00001.parquet` next to the listed shard.",
)
_v(
    "V004",
    "shard-checksum",
    "a shard's size or sha256 differs from the manifest",
    "Each shard's size and sha256 (streamed in chunks) equal the manifest's.",
    "A changed byte is a truncated upload, a bad disk or a hand edit: the data is no longer what convert checked.",
    "Copy the shard again from a folder that verifies. " + _RECONVERT,
    "One byte flipped in the middle of a shard.",
)
_v(
    "V005",
    "shard-unreadable",
    "a shard is not readable Parquet (or lacks the audio columns)",
    "Each shard opens as Parquet, has the `audios` and `audio_info` columns, and streams to its last row group; "
    "its footer's row count matches the rows read.",
    "A shard that does not read stops the Hub viewer and every loader at that file.",
    _RECONVERT,
    "A shard truncated to half its size, or rewritten without its `audios` column.",
)
_v(
    "V006",
    "shard-row-count",
    "a shard's row count differs from the manifest",
    "The rows read from each shard equal the manifest's count for it.",
    "The card's split sizes and the trainer's epoch length come from these counts.",
    "Restore the shard or the manifest from the same run. " + _RECONVERT,
    "The manifest says 14 rows for a shard that holds 13.",
)
_v(
    "V007",
    "clip-count",
    "a shard's clip count differs from the manifest, or a row's audios and audio_info disagree",
    "Each row has one `audio_info` entry per audio, and each shard holds the number of clips the manifest records.",
    "`audio_info` is how a trainer learns each clip's rate and length without decoding; a mismatch pairs the wrong "
    "metadata with a clip.",
    _RECONVERT,
    "A row whose `audios` holds two clips and `audio_info` one.",
)
_v(
    "V008",
    "audio-undecodable",
    "an audio does not decode (or has no embedded bytes)",
    "Every stored clip has bytes and decodes with soundfile.",
    "A clip that does not decode crashes the data loader at that record, usually hours into training.",
    _RECONVERT,
    "A clip's bytes replaced by `b'not audio at all'`.",
)
_v(
    "V009",
    "audio-sampling-rate",
    "an audio's sampling rate differs from the declared one",
    "Each clip decodes at the dataset's sampling rate, the one its `audio_info` and the Audio feature declare.",
    "Audio encoders expect one rate (16 kHz for Whisper-style encoders); a clip at another rate is heard at the wrong "
    "speed and pitch, silently.",
    _RECONVERT,
    "An 8 kHz FLAC swapped into a 16 kHz dataset.",
)
_v(
    "V010",
    "audio-not-mono",
    "an audio is not mono",
    "Each clip decodes to one channel and `audio_info.channels` says 1.",
    "Convert stores mono; a stereo clip doubles its length for loaders that flatten channels.",
    _RECONVERT,
    "A stereo FLAC swapped in for a stored clip.",
)
_v(
    "V011",
    "audio-length",
    "an audio's num_samples differs from its decoded length",
    "Each clip decodes to exactly `audio_info.num_samples` samples.",
    "Length-grouped batching and token budgets use `num_samples`; a clip of another length breaks both.",
    _RECONVERT,
    "A clip truncated and re-encoded, its audio_info left as it was.",
)
_v(
    "V012",
    "audio-pcm-hash",
    "an audio's pcm_hash differs from the hash of its decoded PCM",
    "The BLAKE2b hash of each clip's decoded 16-bit PCM equals `audio_info.pcm_hash`.",
    "The hash is what proves the stored audio is the converted audio: a valid clip swapped for another (same rate, "
    "same length) passes every other check.",
    _RECONVERT,
    "Row 3's clip replaced by a different tone of the same length.",
)
_v(
    "V013",
    "card-unreadable",
    "README.md (dataset card) missing or its YAML unreadable",
    "`README.md` exists and its YAML front matter parses and holds `configs` and `dataset_info`.",
    "Without the card the Hub does not know the configs, splits or the Audio feature, and loads the audio as raw bytes.",
    "Restore README.md from the convert run (convert writes it).",
    "README.md deleted, or its front matter cut off.",
)
_v(
    "V014",
    "card-data-files",
    "the card's configs data_files do not match the shard files",
    "Every `data_files` glob in the card matches a shard, every shard is matched once, under its own config and split, "
    "and no unlisted file is matched.",
    "The Hub loads exactly what the globs match: a shard no glob matches is never trained on, one matched twice is "
    "trained on twice.",
    "Restore the card from the convert run, or fix the globs to match `manifest.json`.",
    "The `dpo` config removed from the card's `configs`.",
)
_v(
    "V015",
    "card-split-sizes",
    "the card's dataset_info num_examples differ from the shards' rows",
    "The card's `dataset_info` lists each config and split with `num_examples` equal to the rows its shards hold.",
    "`datasets` checks split sizes on load and fails on a mismatch (or reports wrong sizes with verification off).",
    "Restore the card from the convert run.",
    "`num_examples: 50` edited to 49.",
)
_v(
    "V016",
    "audio-feature",
    "the Audio feature (card or shard schema) is missing or has the wrong sampling rate",
    "The card's `audios` feature and each shard's `huggingface` schema metadata declare an Audio feature at the "
    "dataset's sampling rate.",
    "`datasets` decodes with this feature: missing, the audio loads as a struct of bytes; at another rate, every clip "
    "is resampled to it.",
    "Restore the card or the shard from the convert run.",
    "`sampling_rate: 16000` edited to 8000 in the card.",
)
_v(
    "V017",
    "summary-totals",
    "the manifest summary totals are inconsistent with the shards",
    "The manifest summary's `written`, `clips` and per-config row counts equal what the shards hold, and "
    "`records_read` equals written + rejected + duplicates (+ excluded and equal pairs skipped, where the run had any).",
    "`audiodata info` and the card report these totals; a mismatch means the manifest belongs to another run.",
    "Restore manifest.json from the convert run that wrote the shards. " + _RECONVERT,
    "`summary.written` raised by 2 by hand.",
)
_v(
    "V018",
    "decoder-disagrees",
    "--decoders: a decoding path (soundfile, datasets) gives other PCM, rate or channels than audio_info records",
    "With `verify --decoders`, every clip is decoded through each path users load with (soundfile; `datasets`' own "
    "Audio decoding where torchcodec loads), and each must give the PCM whose hash `audio_info.pcm_hash` records, at "
    "its rate and channel count.",
    "A user who loads the dataset another way must train on the same audio: a decoder that resamples, downmixes or "
    "trims differently changes the data silently.",
    "Pin the decoding library the card names, or load with `audiodata.open` (soundfile alone). " + _RECONVERT,
    "A clip replaced by another tone of the same length: soundfile decodes it, and its hash is not the recorded one.",
)
_v(
    "V019",
    "decoder-fails",
    "--decoders: a decoding path (soundfile, datasets) fails on a clip",
    "With `verify --decoders`, every clip must decode through each available path.",
    "A clip one library cannot open crashes the data loader of every user who loads the dataset through it.",
    "Re-encode the clip (or re-convert), or load with `audiodata.open` (soundfile alone). " + _RECONVERT,
    "Bytes that are not audio in a row's `audios`.",
)
