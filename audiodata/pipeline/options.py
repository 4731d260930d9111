"""Conversion settings as one dataclass (trl-style): the CLI and the Python API
build the same object, and the run fingerprint is computed from it."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field

from audiodata import objstore
from audiodata.budget import DEFAULT_CUTOFF
from audiodata.dedup.index import NEAR_THRESHOLD
from audiodata.dedup.store import DEFAULT_MEMORY
from audiodata.errors import UsageError
from audiodata.exclude import ExcludeError, ExcludeList, load_exclude
from audiodata.families import DEFAULT_WINDOW, FAMILIES
from audiodata.normalize import NORMALIZERS, normalizer
from audiodata.pipeline.process import AudioSettings
from audiodata.pipeline.read import ReadSettings
from audiodata.privacy import public_path
from audiodata.readers.longform import MODES as LONG_FORM_MODES
from audiodata.readers.longform import LongForm
from audiodata.readers.pairs import PairSource, load_hypotheses
from audiodata.readers.rawfile import MAX_DECOMPRESSED, MAX_RATIO, GzipBounds
from audiodata.readers.rows import parse_columns
from audiodata.readers.spec import DIALECTS
from audiodata.readers.templates import TASKS, Template, TemplateError, load_template, preset
from audiodata.rules.transcript import TASKS as RATE_TASKS
from audiodata.rules.transcript import is_transcription_prompt
from audiodata.visual import VISUAL_MODES

#: Settings that change how a run goes, not what it writes; left out of the fingerprint.
RUNTIME_ONLY = ("num_workers", "overwrite", "progress", "batch_size", "dedup_memory", "num_shards", "shard_index")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
}


def parse_size(text: str | int) -> int:
    """'500MB' -> 500_000_000 (decimal, like datasets); '1GiB' -> 2**30."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m or (m.group(2) or "").lower() not in _UNITS:
        raise UsageError(f"not a size: {text!r} (try 500MB, 64MiB, 1GB)")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


class OptionsError(UsageError):
    """A usage error: the CLI exits with code 2."""


def resolve_options(options: ConvertOptions | None, kwargs: dict[str, object]) -> ConvertOptions:
    """``options=`` or loose keywords, never both: mixing them used to drop the loose ones silently."""
    if options is not None and kwargs:
        raise OptionsError(f"pass either options= or keyword options, not both (got options= and {', '.join(sorted(kwargs))})")
    return options if options is not None else ConvertOptions(**kwargs)  # type: ignore[arg-type]


@dataclass
class ConvertOptions:
    """Everything ``audiodata convert`` can be told. Defaults are the documented ones."""

    format: str | None = None  # force a dialect instead of detecting it per record
    media_root: str | None = None  # default: each input file's own folder
    prompt: str | None = None  # user prompt for transcript-only (minicpm) records
    system: str | None = None  # system prompt for records that carry none
    sample_rate: int = 16000
    codec: str = "flac"
    split: str = "train"
    val_ratio: float = 0.0
    val_split: str = "validation"
    seed: int = 0
    max_shard_size: int = 500 * 10**6
    row_group_rows: int = 100
    max_audio_bytes: int = 256 * 2**20
    max_duration: float = 1200.0
    max_record_bytes: int = 512 * 2**20
    max_decompressed_bytes: int = MAX_DECOMPRESSED  # one gzip input expands to at most this (F008)
    max_expansion_ratio: float = MAX_RATIO  # ... and to at most this many times its compressed bytes
    allow_absolute_paths: bool = True
    absolute_paths: bool = False  # outputs keep absolute paths as typed and resolved (default: relative, audiodata/privacy.py)
    datasets: list[str] = field(default_factory=list)  # dataset_info.json entries to take (default: all)
    columns: dict[str, str] = field(default_factory=dict)  # raw corpora: which column is audio, text, prompt (default: detected)
    all_files: bool = False  # a folder holding a dataset_info.json: also read the JSON files it does not name
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    model_family: str | None = None  # qwen2-audio, qwen2.5-omni, minicpm-o: budget rules and audio window
    cutoff_len: int = DEFAULT_CUTOFF  # the trainer's cutoff_len (LLaMA-Factory's default)
    tokenizer: str | None = None  # a tokenizer (local path or Hub id) for exact text token counts
    license: str = "unknown"  # the card's license tag (an SPDX-style Hub id, e.g. cc-by-4.0)
    dedup: str = "off"  # off | exact | near: drop later copies of a record (kept in rejects.jsonl)
    dedup_threshold: float = NEAR_THRESHOLD  # fingerprint similarity from which clips are the same recording
    dedup_memory: int = DEFAULT_MEMORY  # bytes the duplicate index (D rules, dedup) keeps in memory before spilling to disk
    # auto | none: which records the transcript-rate (R) rules measure; asr | translate | caption | qa: a preset
    # template (readers/templates.py) for transcript-only corpora, which also says what the R rules measure
    task: str = "auto"
    template: str | None = None  # a template file (YAML): prompt pool, placeholders, assistant column, system prompt
    target_lang: str | None = None  # fills a template's {target_lang} where a record has no target_lang column
    prompt_seed: int | None = None  # which prompt of the pool each record gets (default: the template's seed, 0)
    normalize_transcripts: str = "none"  # none | basic | whisper-en: one style for transcripts (audiodata.normalize)
    visual: str = "embed"  # images/videos: embed (Hub Image/Video features) | refs (paths relative to the media root)
    # raw ASR corpora (NeMo, lhotse, subtitles; audiodata.readers.longform): one record per timed segment, or
    # segments packed into windows of --window-seconds (default: the --model-family's window, else 30 s)
    long_form: str = "segments"
    window_seconds: float | None = None
    allow_remote: list[str] = field(default_factory=list)  # object-store prefixes media URLs may come from (s3://bucket/)
    exclude: list[str] = field(default_factory=list)  # quarantine.jsonl / rejects.jsonl files: leave out the records listed
    # DPO pairs from ASR corpora (audiodata.readers.pairs): the transcript chosen, the hypothesis in
    # ``columns["rejected"]`` (--column rejected=NAME) or in this file, keyed by record id, rejected
    hypotheses: str | None = None
    num_workers: int = 0  # 0: all cores
    # ranks (audiodata.pipeline.ranks): convert slice shard_index of num_shards into OUT/ranks/rank-I-of-N; merge assembles them
    num_shards: int = 1
    shard_index: int = 0
    batch_size: int = 16
    overwrite: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_shard_size, str):
            self.max_shard_size = parse_size(self.max_shard_size)
        if isinstance(self.max_audio_bytes, str):
            self.max_audio_bytes = parse_size(self.max_audio_bytes)
        if isinstance(self.max_record_bytes, str):
            self.max_record_bytes = parse_size(self.max_record_bytes)
        if isinstance(self.max_decompressed_bytes, str):
            self.max_decompressed_bytes = parse_size(self.max_decompressed_bytes)
        if self.max_decompressed_bytes < 1:
            raise OptionsError("--max-decompressed-bytes must be positive")
        if not self.max_expansion_ratio >= 1:
            raise OptionsError(f"--max-expansion-ratio must be at least 1, got {self.max_expansion_ratio}")
        if isinstance(self.dedup_memory, str):
            self.dedup_memory = parse_size(self.dedup_memory)
        if self.format is not None and self.format not in (*DIALECTS, "openai"):
            raise OptionsError(f"--format must be one of {', '.join(DIALECTS)}, got {self.format!r}")
        if self.sample_rate < 8000 or self.sample_rate > 192000:
            raise OptionsError(f"--sample-rate {self.sample_rate} is out of range (8000..192000)")
        if self.codec not in ("flac", "wav"):
            raise OptionsError(f"--codec must be flac or wav, got {self.codec!r}")
        if not 0.0 <= self.val_ratio < 1.0:
            raise OptionsError(f"--val-ratio must be in [0, 1), got {self.val_ratio}")
        for name in (self.split, self.val_split):
            if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise OptionsError(f"split names must be letters, digits or _, got {name!r}")
        if self.val_ratio and self.split == self.val_split:
            raise OptionsError("--split and --val-split must differ")
        if self.max_shard_size < 2**16:
            raise OptionsError("--max-shard-size must be at least 64KiB")
        if self.num_workers < 0:
            raise OptionsError("--num-workers must be >= 0")
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise OptionsError(
                f"--num-shards must be at least 1 and --shard-index in 0..N-1, got {self.shard_index} of {self.num_shards}"
            )
        if self.model_family is not None and self.model_family not in FAMILIES:
            raise OptionsError(f"--model-family must be one of {', '.join(FAMILIES)}, got {self.model_family!r}")
        if self.dedup not in ("off", "exact", "near"):
            raise OptionsError(f"--dedup must be off, exact or near, got {self.dedup!r}")
        try:
            self.columns = parse_columns(self.columns)
        except ValueError as exc:
            raise OptionsError(str(exc)) from None
        if self.dedup_memory < 0:
            raise OptionsError(f"--dedup-memory must be a size, got {self.dedup_memory}")
        if not 0.5 <= self.dedup_threshold <= 1.0:
            raise OptionsError(f"--dedup-threshold must be in [0.5, 1], got {self.dedup_threshold}")
        if self.task not in TASKS:
            raise OptionsError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.normalize_transcripts not in NORMALIZERS:
            raise OptionsError(
                f"--normalize-transcripts must be one of {', '.join(NORMALIZERS)}, got {self.normalize_transcripts!r}"
            )
        normalizer(self.normalize_transcripts)  # a missing package is said now, before any record is read
        self.prompting: Template | None = self._prompting()
        if self.visual not in VISUAL_MODES:
            raise OptionsError(f"--visual must be one of {', '.join(VISUAL_MODES)}, got {self.visual!r}")
        if self.long_form not in LONG_FORM_MODES:
            raise OptionsError(f"--long-form must be one of {', '.join(LONG_FORM_MODES)}, got {self.long_form!r}")
        if self.window_seconds is not None and not 1.0 <= self.window_seconds <= 3600.0:
            raise OptionsError(f"--window-seconds must be between 1 and 3600, got {self.window_seconds}")
        if self.cutoff_len < 16:
            raise OptionsError(f"--cutoff-len must be at least 16, got {self.cutoff_len}")
        self.allow_remote = list(objstore.allow_prefixes(self.allow_remote))
        for prefix in self.allow_remote:
            objstore.filesystem(prefix)  # a missing library (s3fs, gcsfs) is said now, naming its extra
        if self.media_root is not None and objstore.is_remote(self.media_root):
            objstore.filesystem(self.media_root)
        elif self.media_root is not None and not os.path.isdir(self.media_root):
            raise OptionsError(f"--media-root {self.media_root} is not a folder")
        self.exclude = [str(p) for p in self.exclude]
        if self.hypotheses is not None:
            self.hypotheses = str(self.hypotheses)
            if "rejected" in self.columns:
                raise OptionsError("give the rejected replies either as --column rejected=NAME or as --hypotheses FILE, not both")
        self.pairs: PairSource | None = None
        if "rejected" in self.columns:
            self.pairs = PairSource(column=self.columns["rejected"])
        elif self.hypotheses is not None:
            shown = public_path(self.hypotheses, self.absolute_paths)
            self.pairs = PairSource(hypotheses=load_hypotheses(self.hypotheses), file=shown)
        try:
            self.excluded: ExcludeList = load_exclude(self.exclude)  # read once, up front: a bad list is a usage error
        except ExcludeError as exc:
            raise OptionsError(str(exc)) from None

    def read_settings(self, enabled: frozenset[str] | None) -> ReadSettings:
        """How the read stage parses records: the same for convert, lint and dedup."""
        return ReadSettings(
            self.max_record_bytes,
            self.prompt,
            self.system,
            enabled,
            pairs=self.pairs,
            template=self.prompting,
            normalize=self.normalize_transcripts,
            task=self.rate_task,
        )

    def _prompting(self) -> Template | None:
        """The template transcript-only records are prompted by: the --template file, else the --task preset;
        options that would contradict it are refused here, before anything is read."""
        if self.template is None:
            chosen = preset(self.task)
        else:
            if self.task != "auto":
                raise OptionsError(
                    f"--task {self.task} and --template both say how records are prompted: give one (a template file "
                    "says what the transcript-rate rules measure with its task: key)"
                )
            if self.prompt:
                raise OptionsError("--prompt and --template both give the user prompt: put it in the template's user pool")
            try:
                chosen = load_template(self.template)
            except TemplateError as exc:
                raise OptionsError(str(exc)) from None
            if self.system and chosen.system:
                raise OptionsError(f"--system and the template's system prompt ({self.template}) disagree: give one")
            text = self.columns.get("text")
            if text and chosen.assistant and text != chosen.assistant:
                raise OptionsError(f"--column text={text} and the template's assistant: {chosen.assistant} disagree: give one")
        if chosen is None:
            if self.target_lang is not None or self.prompt_seed is not None:
                flag = "--target-lang" if self.target_lang is not None else "--prompt-seed"
                raise OptionsError(
                    f"{flag} applies to a template's prompts: give --task translate (or another preset) or --template"
                )
            return None
        if self.target_lang is not None and "target_lang" not in chosen.names():
            raise OptionsError(f"--target-lang: the {chosen.name} template's prompts name no {{target_lang}}")
        return chosen.with_values(self.prompt_seed, self.target_lang)

    @property
    def row_columns(self) -> dict[str, str]:
        """``--column`` for the rows of datasets and tars, with the template's assistant column as the transcript
        column when none is named (a question/answer set has no column a transcript is found by)."""
        reply = self.prompting.assistant if self.prompting is not None else None
        return {**self.columns, "text": reply} if reply and "text" not in self.columns else self.columns

    @property
    def rate_task(self) -> str:
        """What the transcript-rate (R) rules measure: auto | asr | none (``--task``, or what the template says)."""
        if self.task in RATE_TASKS:
            return self.task if self.prompting is None else self.prompting.task
        return self.prompting.task if self.prompting is not None else "auto"

    def transcription(self) -> bool:
        """Whether the records are transcripts (a long recording without timestamps is then A017): --task asr,
        or with auto, a prompt (or every prompt of the template's pool) that asks for one."""
        task = self.rate_task
        if task != "auto":
            return task == "asr"
        if self.prompting is not None:
            system = self.prompting.system
            pool = self.prompting.user or ("",)
            return all(is_transcription_prompt(p) for p in pool) and (system is None or is_transcription_prompt(system))
        return is_transcription_prompt(self.prompt or "")

    def longform(self, enabled: frozenset[str] | None = None) -> LongForm:
        """How raw ASR corpora treat long recordings: the window is --window-seconds, else the family's, else
        Qwen2-Audio's 30 s; records are transcripts unless --task none or a prompt that asks for something else."""
        family = FAMILIES[self.model_family].window_seconds if self.model_family else None
        window = self.window_seconds or family or DEFAULT_WINDOW
        return LongForm(
            self.long_form,
            window,
            self.transcription(),
            enabled is None or "A017" in enabled,
            self.max_audio_bytes,
            self.allow_absolute_paths,
        )

    @property
    def gzip_bounds(self) -> GzipBounds:
        return GzipBounds(self.max_decompressed_bytes, self.max_expansion_ratio)

    @property
    def workers(self) -> int:
        return self.num_workers or os.cpu_count() or 1

    def audio_settings(
        self, enabled: frozenset[str] | None, encode: bool = True, preview: bool = False, fingerprint: bool | None = None
    ) -> AudioSettings:
        """The audio stage's settings: the same for convert, lint and dedup, so all judge alike.
        ``fingerprint`` defaults to what ``--dedup`` needs."""
        return AudioSettings(
            self.sample_rate,
            self.codec,
            self.max_audio_bytes,
            self.max_duration,
            self.allow_absolute_paths,
            enabled,
            encode,
            self.model_family,
            self.cutoff_len,
            self.tokenizer,
            preview,
            self.dedup == "near" if fingerprint is None else fingerprint,
            task=self.rate_task,
            visual=self.visual,
            absolute_paths=self.absolute_paths,
            allow_remote=tuple(self.allow_remote),
        )

    def recorded(self, public: bool = True) -> dict[str, object]:
        """The options that shape the output, as stored in the manifest: local paths (``media_root``, a local
        ``tokenizer``) in their public form unless ``absolute_paths`` (``public=False``: as typed)."""
        out = {k: v for k, v in asdict(self).items() if k not in RUNTIME_ONLY}
        if not self.allow_remote:
            del out["allow_remote"]  # runs without --allow-remote record (and fingerprint) what they always did
        if not self.exclude:
            del out["exclude"]  # runs without --exclude record (and fingerprint) exactly what they always did
        if self.hypotheses is None:
            del out["hypotheses"]  # likewise runs without --hypotheses
        for key in ("template", "target_lang", "prompt_seed"):
            if out[key] is None:
                del out[key]  # ... and so do runs without a template
        if self.normalize_transcripts == "none":
            del out["normalize_transcripts"]  # ... and so do runs without --normalize-transcripts
        if public:
            for key in ("media_root", "tokenizer", "template"):
                value = out.get(key)
                if isinstance(value, str) and os.path.isabs(value):
                    out[key] = public_path(value, self.absolute_paths)
            if self.exclude:
                out["exclude"] = [public_path(p, self.absolute_paths) for p in self.exclude]
            if self.hypotheses is not None:
                out["hypotheses"] = public_path(self.hypotheses, self.absolute_paths)
        return out

    def fingerprint(self, inputs: list[dict[str, object]]) -> str:
        recorded = self.recorded(public=False)
        if self.exclude:  # what the lists say, not only their names: a resume must leave out the same records
            recorded["exclude"] = self.excluded.digest()
        if self.pairs is not None and self.hypotheses is not None:  # what the file says, not only its name
            recorded["hypotheses"] = self.pairs.digest()
        if self.prompting is not None:  # what the template says, not only its name: an edited pool is another run
            recorded["prompting"] = self.prompting.digest()
        blob = json.dumps({"options": recorded, "inputs": inputs}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

