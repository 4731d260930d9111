"""Codes reported while reading: by the readers, the audio stage and the duplicate index.

They have no check function: the problem is found while a file is parsed, a clip decoded or a record
compared with the ones before it. Registered here with their docs (``audiodata rules``); record and
audio rules are registered next to their checks.
"""

from __future__ import annotations

from audiodata.rules.registry import RuleDoc, Severity, register

S = Severity
_ASK = '{"conversations": [{"from": "human", "value": "<audio>What is said?"}, {"from": "gpt", "value": "Hello."}]'


def _rec(audios: str, extra: str = "") -> str:
    """An example sharegpt record with the given ``audios`` JSON (and extra keys)."""
    return f'`{_ASK}, "audios": {audios}{extra}}}`'


register(
    "F001",
    "malformed-json",
    S.ERROR,
    "The line or array element is not valid JSON; fix the syntax.",
    doc=RuleDoc(
        what="Each JSONL line, or each element of a JSON array, must parse as JSON. The message gives the parser's "
        "reason and column.",
        why="A trainer's loader stops at the first line it cannot parse, often after hours of preprocessing; lint "
        "names every such line at once and convert rejects it whole (never silently).",
        fix="Fix the syntax at the column named (an unescaped quote, a trailing comma, a line cut off).",
        example='`{"conversations": [{"from": "human", "value": "<audio>Hi}]}` (the string is never closed)',
    ),
)
register(
    "F002",
    "not-an-object",
    S.ERROR,
    "A record must be a JSON object; wrap the values in {...}.",
    doc=RuleDoc(
        what="Each record is a JSON object (a line, or an element of the top-level array).",
        why="Every dialect describes a record by its keys; a list or a bare string has none to read.",
        fix="Write the record as an object with its dialect's keys.",
        example='`["<audio>What is said?", "Hello."]`',
    ),
)
register(
    "F003",
    "unknown-dialect",
    S.ERROR,
    "No known dialect matches the record's keys; pass --format or fix the keys.",
    doc=RuleDoc(
        what="Each record's keys are matched against the dialects audiodata reads (sharegpt, alpaca, messages, "
        "MiniCPM, LLaMA-Factory v1 ...); the message lists the keys it found.",
        why="A record no dialect matches cannot be turned into a conversation; guessing would train on the wrong turns.",
        fix="Rename the keys to a dialect's (see README: input dialects), or pass `--format DIALECT` and fix what its "
        "schema reports (S005).",
        example='`{"question": "<audio>Hi?", "answer": "Hello."}`',
    ),
)
register(
    "F004",
    "unreadable-input",
    S.ERROR,
    "The input file cannot be read (missing, permissions, not a regular file, bad gzip, a read error part way: "
    "the records before it are kept).",
    doc=RuleDoc(
        what="Each input file opens and reads to its end (gzip included).",
        why="A file that stops part way silently shortens the dataset; the records read before the error are kept and "
        "the file is named, so nothing is lost without a word.",
        fix="Check the path and permissions; re-download or re-compress a damaged `.gz`.",
        example="`broken.jsonl.gz` that starts with the gzip magic bytes and then holds plain text.",
    ),
)
register(
    "F005",
    "record-too-large",
    S.ERROR,
    "The record exceeds --max-record-bytes; split it or raise the bound.",
    doc=RuleDoc(
        what="One JSON record (a line, an array element) is larger than `--max-record-bytes` (default 512 MiB).",
        why="A record that size is almost always inline audio or a file glued into one line by mistake; reading it "
        "whole would take the worker's memory.",
        fix="Move inline audio to files and reference them by path, or raise `--max-record-bytes`.",
        example="A record whose `audios` holds a 700 MB base64 string.",
    ),
)
register(
    "F008",
    "decompression-bomb",
    S.ERROR,
    "A gzip input expands past --max-decompressed-bytes or --max-expansion-ratio; it is read no further "
    "(the records before it are kept). Check the file, or raise the bound.",
    doc=RuleDoc(
        what="A `.gz` input is decompressed as it is read; past its first 16 MiB it may not expand more than "
        "`--max-expansion-ratio` (100) times its compressed size, nor past `--max-decompressed-bytes` (64 GiB).",
        why="A small file that expands to terabytes (a decompression bomb, or a corrupt stream) would fill the disk "
        "or memory of whoever converts it.",
        fix="Check where the file came from; for a genuinely repetitive corpus, raise the bound.",
        example="32 MiB of spaces compressed to 32 kB (1000x).",
    ),
)
register(
    "F009",
    "not-utf8",
    S.ERROR,
    "The input file is UTF-16 or UTF-32 (detected from its byte order mark or NUL pattern); JSON is UTF-8: re-encode it.",
    doc=RuleDoc(
        what="Each input file is UTF-8 (a UTF-8 byte order mark is accepted); UTF-16 and UTF-32 are recognised by "
        "their byte order mark or NUL bytes.",
        why="JSON on disk is UTF-8 (RFC 8259); read as UTF-8, a UTF-16 file is garbage on every line and would be "
        "reported as thousands of F001 errors instead of one.",
        fix="Re-encode it: `iconv -f UTF-16 -t UTF-8 in.jsonl > out.jsonl`.",
        example="A JSONL file saved as 'Unicode' by a Windows editor (UTF-16 LE with a BOM).",
    ),
)
register(
    "F010",
    "malformed-subtitles",
    S.ERROR,
    "A subtitle cue (SRT/VTT next to a recording) whose timing line cannot be read, or that ends before it starts; "
    "fix the cue (the file's other cues are read).",
    doc=RuleDoc(
        what="An SRT or WebVTT file next to a recording (same stem) gives its transcript with timings; each cue's "
        "timing line (`00:00:01,500 --> 00:00:03,200`) must parse and end after it starts. The finding is located "
        "to the cue's line; the file's other cues are read.",
        why="The cue times are where the recording is cut into windows: a cue without readable times, or one that "
        "runs backwards, has no place in the audio, and guessing one would pair its text with the wrong speech.",
        fix="Fix the cue's timing line (hours:minutes:seconds,milliseconds, start before end), or drop the cue.",
        example="`talk.srt` next to `talk.wav` with the cue `00:00:05,000 --> 00:00:02,000` (ends before it starts).",
    ),
)
register(
    "F006",
    "dataset-not-read",
    S.WARNING,
    "A dataset_info.json or v1 YAML entry that is not read: on a hub that cannot be reached from here (offline and "
    "not cached), loaded by a script or from the cloud, pretraining text, or not JSON/JSONL.",
    doc=RuleDoc(
        what="An entry of a LLaMA-Factory `dataset_info.json` (or a v1 dataset YAML) that audiodata does not read: "
        "`hf_hub_url` / `ms_hub_url` entries whose hub cannot be reached from here (offline and not in the local "
        "cache; reachable ones are read through the Hub, `subset`, `split` and `columns` honoured), entries loaded "
        "by a script or from cloud storage, pretraining text (`columns.prompt` only), or files that are not JSON/JSONL.",
        why="audiodata converts conversations only, and reads the Hub only where it can; listing the entry says why "
        "its records are not in the output, instead of a dataset that is silently smaller.",
        fix="Run once with network access (or fill the Hugging Face cache) for hub entries, download other hosted "
        "data and point a `file_name` entry at it, or convert the local entries only (`--dataset NAME`).",
        example='`{"on_the_hub": {"hf_hub_url": "me/data"}}` in dataset_info.json, read with HF_HUB_OFFLINE=1 and '
        "nothing cached.",
    ),
)
register(
    "F007",
    "file-not-named",
    S.WARNING,
    "A JSON file in a dataset_dir that its dataset_info.json does not name is not read; name it, or pass --all-files.",
    doc=RuleDoc(
        what="A folder holding a `dataset_info.json` is read as LLaMA-Factory reads it: only the files its entries "
        "name. Other JSON files there are listed.",
        why="Reading every file would convert notes, configs or held-out splits as training data.",
        fix="Add an entry for the file to dataset_info.json, or pass `--all-files`.",
        example="`data/notes.json` next to a dataset_info.json that names only `train.json`.",
    ),
)
register(
    "S001",
    "invalid-field",
    S.ERROR,
    "A required field is missing or has the wrong type.",
    doc=RuleDoc(
        what="The fields a dialect needs are present with the right JSON type: turn text is a string, turns are a "
        "list of objects, a preference record has both sides. Found while the record is read (and, for export, "
        "while a stored row is rebuilt: a turn whose text is null).",
        why="A number where text belongs, or a missing side, either crashes the trainer's template or trains on `None`.",
        fix="Fix the field named in the finding.",
        example='`{"conversations": [{"from": "human", "value": "<audio>Hi"}, {"from": "gpt", "value": 7}], ...}`',
    ),
)
register(
    "S010",
    "swift-preference-row",
    S.ERROR,
    "An ms-swift DPO row that is not one pair (the rejected side's prompt, system, audios or tools differ) or ms-swift drops.",
    doc=RuleDoc(
        what="An ms-swift `rejected_messages` row is a preference pair only when its prompt, system, audios and tools "
        "equal those of `messages`; the message names the first difference.",
        why="A pair whose two sides see different prompts or audio teaches the model nothing about the replies; "
        "ms-swift itself drops some of these rows without a word.",
        fix="Make the rejected conversation repeat the chosen one's prompt and audios, differing only in the reply.",
        example='`{"messages": [U, A], "rejected_messages": [U2, B], "audios": "a.wav", "rejected_audios": "a.wav"}` '
        "with U2 != U",
    ),
)
register(
    "S005",
    "schema",
    S.ERROR,
    "The record does not match its dialect's JSON Schema (schemas/input/); fix the field named.",
    doc=RuleDoc(
        what="Each record is validated against its dialect's JSON Schema (`schemas/input/`); the finding names the "
        "field as a path (`conversations[2].value`) and what the schema expected.",
        why="The schemas state what the trainers accept; a record outside them is read differently by each tool, or not at all.",
        fix="Fix the field named; the schema file documents every property.",
        example='`{"id": 1.5, "conversations": [...]}` (an id must be a string or an integer)',
    ),
)
register(
    "A001",
    "audio-file-missing",
    S.ERROR,
    "The audio file does not exist; fix the path or --media-root.",
    doc=RuleDoc(
        what="Each audio path resolves to an existing file under the media root (relative paths: against "
        "`--media-root`, then the input file's folder).",
        why="A missing clip crashes the trainer's loader when it reaches the record, or trains on text alone.",
        fix="Fix the path, or pass the `--media-root` the paths are relative to.",
        example=_rec('["missing.wav"]'),
    ),
)
register(
    "A002",
    "path-escapes-root",
    S.ERROR,
    "A relative audio path resolves outside the media root; move the file under it.",
    doc=RuleDoc(
        what="A relative audio path may not leave the media root (`..`, or a symlink pointing out).",
        why="Datasets travel; a path that escapes the root reads whatever happens to be there on the next machine, "
        "and lets a shared dataset read arbitrary files.",
        fix="Move the file under the media root and make the path relative to it.",
        example=_rec('["../outside.wav"]'),
    ),
)
register(
    "A003",
    "audio-url",
    S.ERROR,
    "Audio given as a URL; download it first (audiodata never fetches).",
    doc=RuleDoc(
        what="An audio reference that is an http(s) URL.",
        why="Fetching at conversion time makes the dataset depend on a server that changes or disappears; audiodata "
        "never reaches the network.",
        fix="Download the files and reference them by path.",
        example=_rec('["https://example.com/a.wav"]'),
    ),
)
register(
    "A004",
    "invalid-base64",
    S.ERROR,
    "The inline audio is not valid base64; re-encode it.",
    doc=RuleDoc(
        what="Inline audio (a data URI or a base64 string) must decode as base64.",
        why="Truncated or mangled base64 is usually a copy-paste or an export bug; the clip cannot be recovered.",
        fix="Re-encode the audio: `base64.b64encode(open(path, 'rb').read()).decode()`.",
        example=_rec('["data:audio/wav;base64,@@@not base64@@@"]'),
    ),
)
register(
    "A005",
    "undecodable-audio",
    S.ERROR,
    "The audio cannot be decoded; check the file or container.",
    doc=RuleDoc(
        what="Each clip decodes (libsndfile, then PyAV for other containers).",
        why="A clip that does not decode crashes the data loader at that record.",
        fix="Check the file (`ffprobe`, `soxi`); re-export it as WAV or FLAC.",
        example="`noise.wav` holding text instead of audio.",
    ),
)
register(
    "A006",
    "empty-audio",
    S.ERROR,
    "The audio has no samples; remove it or replace it.",
    doc=RuleDoc(
        what="Each clip holds at least one sample.",
        why="An empty clip gives the encoder nothing; most feature extractors fail on it.",
        fix="Replace the clip or drop the record.",
        example="A WAV file with a valid header and zero frames.",
    ),
)
register(
    "A007",
    "audio-too-short",
    S.ERROR,
    "Audio under 0.1 s yields no audio tokens in Whisper-style encoders.",
    doc=RuleDoc(
        what="Each clip lasts at least 0.1 s.",
        why="Whisper-style encoders turn 0.1 s into zero audio tokens: the `<audio>` marker expands to nothing and "
        "the trainer stops with 'audio features and audio tokens do not match'.",
        fix="Drop the clip, or pad it with silence to the length it was meant to have.",
        example="A 0.05 s clip.",
    ),
)
register(
    "A010",
    "container-needs-ffmpeg",
    S.ERROR,
    "This container needs ffmpeg; install it (apt-get install ffmpeg).",
    doc=RuleDoc(
        what="A container libsndfile cannot read (m4a, opus in webm ...) and no PyAV/ffmpeg decoder is installed.",
        why="The clip cannot be decoded on this machine, so it cannot be checked or stored.",
        fix="Install ffmpeg (`apt-get install ffmpeg`, or the `av` package), or convert the files to FLAC first.",
        example="`clip.m4a` on a machine without PyAV.",
    ),
)
register(
    "D001",
    "duplicate-record",
    S.WARNING,
    "Same audio and conversation as an earlier record; drop one.",
    stage="dataset",
    doc=RuleDoc(
        what="A record with the same audio (equal decoded PCM, whatever the container) and the same conversation as "
        "an earlier one. Reported by lint, `audiodata dedup`, and `convert --dedup` (which drops the copy).",
        why="Duplicates weight some examples twice and, across splits, leak evaluation data into training.",
        fix="Drop the later copy (`convert --dedup exact`).",
        example="The same record twice in one file, or once as `a.wav` and once as `a.flac`.",
    ),
)
register(
    "D002",
    "near-duplicate",
    S.WARNING,
    "The same recording (re-encoded, resampled, re-gained) with the same conversation.",
    stage="dataset",
    doc=RuleDoc(
        what="A record whose audio is the same recording as an earlier one's (resampled, re-encoded lossily, "
        "re-gained, with light noise), found by acoustic fingerprints, with the same conversation. Reported by "
        "`audiodata dedup` and `convert --dedup near`; lint checks exact copies only.",
        why="Near copies are duplicates the PCM hash cannot see: the same utterance trained twice, or leaked across splits.",
        fix="Drop the later copy (`convert --dedup near`).",
        example="`speech.wav` and `speech-gain.wav` (the same clip at half the gain), both transcribed the same.",
    ),
)
register(
    "D003",
    "conflicting-response",
    S.WARNING,
    "Same audio and prompt as an earlier record, different response: check which is right.",
    stage="dataset",
    doc=RuleDoc(
        what="A record with the same audio and prompt as an earlier one but another response (for KTO: the same "
        "completion labelled both ways).",
        why="Two answers to one question teach the model that either is right; usually one is a labelling error.",
        fix="Keep the right response and drop the other, or make the prompts say what differs.",
        example="`a.wav` + 'What is said?' answered 'Hello there.' in one record and 'Goodbye.' in another.",
    ),
)
register(
    "D004",
    "leakage",
    S.ERROR,
    "The record (or a near copy) is already in the --against dataset, e.g. a test split.",
    stage="dataset",
    doc=RuleDoc(
        what="An input record whose audio (exactly, or a near copy) and conversation are already in the converted "
        "dataset given to `audiodata dedup --against`.",
        why="Training on test data inflates every evaluation number; near copies leak as surely as exact ones.",
        fix="Drop the record from the training inputs.",
        example="`audiodata dedup train.jsonl --against test-split/` where train.jsonl holds a re-gained copy of a "
        "test clip with its transcript.",
    ),
)
register(
    "P002",
    "kto-label",
    S.ERROR,
    "A KTO record's label (kto_tag / label) is missing or not a JSON boolean; write true or false.",
    doc=RuleDoc(
        what="A KTO record's label (`kto_tag`, `label`) is a JSON boolean (also checked when export rebuilds a stored KTO row).",
        why='A string such as "true" or "false" is truthy in Python: both would train as desirable.',
        fix="Write `true` or `false` without quotes.",
        example=_rec('["a.wav"]', ', "kto_tag": "true"'),
    ),
)
register(
    "P003",
    "kto-one-label",
    S.WARNING,
    "Every KTO record has the same label: KTO needs desirable and undesirable examples; add the other kind.",
    stage="dataset",
    doc=RuleDoc(
        what="Across the dataset, KTO records carry both labels.",
        why="KTO's loss weighs desirable against undesirable examples; with one kind only it degenerates (TRL warns "
        "about the imbalance, not about its absence).",
        fix="Add examples of the other label, or train SFT on the desirable ones.",
        example="A KTO file where every record has `kto_tag: true`.",
    ),
)
register(
    "P004",
    "equal-pair-skipped",
    S.INFO,
    "A pair made from an ASR hypothesis (--column rejected / --hypotheses) equals its transcript; convert skips it, counted.",
    doc=RuleDoc(
        what="A DPO pair built from an ASR corpus (the reference transcript chosen, a hypothesis rejected) whose two "
        "replies are the same text, runs of whitespace aside.",
        why="The recogniser got the clip right: the pair has no preference to learn and only dilutes the batch. "
        "`convert` skips it and counts it (`equal_pairs` in the summary and manifest; each listed in `rejects.jsonl`), so "
        "the number of pairs is never smaller than the corpus silently.",
        fix="Nothing to fix: the record is left out. `--ignore P004` writes such pairs anyway (P001 then warns).",
        example='`{"audio_filepath": "a.wav", "duration": 2.0, "text": "hello there", "pred_text": "hello  there"}` '
        "with `--column rejected=pred_text`.",
    ),
)
register(
    "P005",
    "no-rejected-reply",
    S.ERROR,
    "Pairs from an ASR corpus: the record has no hypothesis (in the --column rejected column, or in --hypotheses by id).",
    doc=RuleDoc(
        what="With `--column rejected=NAME` or `--hypotheses FILE`, every record becomes a DPO pair: its transcript "
        "chosen, its hypothesis rejected. The record has no such hypothesis (the column is missing, null or not a "
        "string; the file has no line for the record's id), or it is not a transcript record ending on its answer.",
        why="Written without its rejected side the record would be SFT data in a preference set, or lost; it is "
        "rejected with the id it was looked up by, so the hypotheses can be completed.",
        fix="Add the hypothesis for that id (ids are the shards' `id` column: the record's own `id`, else "
        "`<file stem>-<index>`), or leave the record out (`--exclude`).",
        example='`{"audio_filepath": "a.wav", "duration": 2.0, "text": "hello there"}` with `--column rejected=pred_text`.',
    ),
)
register(
    "A011",
    "audio-too-large",
    S.ERROR,
    "The audio exceeds --max-audio-bytes or --max-duration; trim or split it.",
    doc=RuleDoc(
        what="Each clip is at most `--max-audio-bytes` (256 MiB) encoded and `--max-duration` (1200 s) decoded.",
        why="A clip of hours is rarely intended and would take a worker's memory and a shard of its own.",
        fix="Split or trim the clip, or raise the bound.",
        example="A 10 s clip with `--max-duration 5`.",
    ),
)
register(
    "A015",
    "non-finite-samples",
    S.ERROR,
    "The audio holds NaN or infinite samples (float WAV, W64, CAF; arrays): it cannot be stored as PCM; fix the source.",
    doc=RuleDoc(
        what="Every source sample is checked as it is decoded (float WAV, W64, CAF, arrays, any decoder's output): "
        "NaN, +Inf or -Inf, or finite samples so large (beyond float32's range once channels are mixed or the "
        "resampler's filter sums them) that the mix overflows. The message counts them and names the first "
        "(time, channel, frame).",
        why="The 16-bit cast of NaN is undefined (it became 0), +-Inf became full scale, and the resampler spreads "
        "one NaN over its whole filter span: the stored clip would be silently corrupted PCM, with no warning, "
        "and its content hash would be meaningless.",
        fix="Re-export the clip from its source, or repair it (e.g. numpy.nan_to_num, then normalise to [-1, 1]); "
        "a tool that writes NaN usually divided by zero while normalising a silent clip.",
        example="A 32-bit float WAV with ten NaN samples at 0.31 s.",
    ),
)
register(
    "A016",
    "audio-out-of-memory",
    S.ERROR,
    "Decoding the clip ran out of memory (MemoryError); lower --num-workers or --max-duration, or split the clip.",
    doc=RuleDoc(
        what="The machine could not allocate memory while this clip was decoded, resampled or encoded. The record "
        "is rejected and the run goes on (the worker survives).",
        why="Decoding runs in blocks, so a worker holds one block and the mono output clip (see the README's "
        "memory bound); running out there means the machine is short of memory for --num-workers clips of "
        "--max-duration at once, or other processes hold it.",
        fix="Lower --num-workers or --max-duration, free memory, or split long clips; then convert again (a "
        "finished run resumes).",
        example="Sixteen workers each decoding a 20-minute 96 kHz clip on an 8 GB machine.",
    ),
)
register(
    "A017",
    "long-recording-untimed",
    S.ERROR,
    "A recording longer than the model's audio window with one transcript and no timestamps inside: never cut "
    "blindly; give segment times, or use a task that is not transcription to keep it as consecutive clips.",
    doc=RuleDoc(
        what="Raw ASR corpora (NeMo manifests, lhotse cuts and supervisions, subtitles) are cut into windows of at "
        "most the model's audio window (--window-seconds, else the --model-family's, else 30 s) at gaps between "
        "timed segments and at pauses the offline voice-activity detector finds. A stretch that no such cut can "
        "bring under the window (one segment longer than it, or segments that run on without a pause) is this "
        "finding, located to its (first) line.",
        why="The encoder keeps only its window (Qwen2-Audio, Qwen2.5-Omni: 30 s): the transcript of a longer clip names "
        "words the model never hears, and cutting the audio without knowing where each word falls cuts through "
        "words and leaves the transcript matching neither side.",
        fix="Give the transcript timestamps (NeMo lines with offset/duration, lhotse supervisions, an SRT/VTT file "
        "next to the audio) so it can be cut at its segments; or, when the text is not a transcript (a summary, "
        "a caption), use --task none or a prompt that asks for it: the recording is then kept whole as consecutive "
        "clips, each with its <audio> marker. --ignore A017 keeps the long clip as it is (A008 warns).",
        example='A NeMo line `{"audio_filepath": "lecture.wav", "text": "...", "duration": 600.0}` (a 10-minute '
        "lecture, one transcript, no offsets) read for a 30 s window.",
    ),
)
# Images and videos (Omni and vision corpora): found while the audio stage opens them, located to the reference.
_VISUAL = '`{"conversations": [{"from": "human", "value": "<audio><image>What is shown?"}, ...], "audios": ["a.wav"], '
register(
    "S030",
    "visual-file-missing",
    S.ERROR,
    "The image or video file does not exist; fix the path or --media-root.",
    doc=RuleDoc(
        what="Each image and video path resolves to an existing file under the media root.",
        why="LLaMA-Factory and ms-swift open every image and video the record names; a missing one stops the run.",
        fix="Fix the path, or pass the `--media-root` the paths are relative to.",
        example=_VISUAL + '"images": ["missing.png"]}`',
    ),
)
register(
    "S031",
    "visual-path-escapes-root",
    S.ERROR,
    "An image or video path resolves outside the media root; move the file under it.",
    doc=RuleDoc(
        what="A relative image or video path may not leave the media root.",
        why="As for audio (A002): a shared dataset must not read files outside its own folder.",
        fix="Move the file under the media root.",
        example=_VISUAL + '"images": ["../outside.png"]}`',
    ),
)
register(
    "S032",
    "visual-not-storable",
    S.ERROR,
    "An image or video in a form audiodata cannot store: a URL (never fetched), a list of frames instead of a video, "
    "or inline data with --visual refs.",
    doc=RuleDoc(
        what="Images and videos are stored as their original files (or, with `--visual refs`, as paths): a URL, a "
        "video given as a list of frames, or inline data under `--visual refs` has no such form.",
        why="audiodata never fetches, and a frame list or inline data cannot become a path reference; storing "
        "something else would change what the trainer sees.",
        fix="Download URLs, give videos as files, or convert with `--visual embed`.",
        example=_VISUAL + '"videos": ["https://example.com/v.mp4"]}`',
    ),
)
register(
    "S033",
    "visual-undecodable",
    S.ERROR,
    "The image or video cannot be read: not an image/video container, or invalid base64.",
    doc=RuleDoc(
        what="Each image opens as an image and each video as a video container (inline data: valid base64).",
        why="The trainer's processor fails on the record when it opens the file.",
        fix="Replace the file with a valid PNG/JPEG or MP4.",
        example=_VISUAL + '"images": ["fake.png"]}` where fake.png holds text.',
    ),
)
register(
    "S034",
    "visual-too-large",
    S.ERROR,
    "The image or video exceeds --max-audio-bytes (the bound on one media file).",
    doc=RuleDoc(
        what="Each image or video is at most `--max-audio-bytes` (the bound on one media file, 256 MiB by default).",
        why="A huge file is usually a mistake (a raw video) and would take a worker's memory.",
        fix="Downscale or re-encode it, or raise the bound.",
        example="A 120 kB image with `--max-audio-bytes 100000`.",
    ),
)
