"""T002/T003: transcripts under one prompt written in different styles (see :mod:`audiodata.rules.style`).

Both compare records across the dataset and run in ``lint`` once every record is profiled, like R005.
Warnings: convert keeps the records; ``convert --normalize-transcripts`` writes one style.
"""

from __future__ import annotations

from audiodata.rules.registry import RuleDoc, Severity, register
from audiodata.rules.style import MIN_EXPECTED, MIN_SHARE, MIN_VOTES

_SCOPE = (
    "Profiled are the transcripts of transcription records, the replies the R rules measure (one clip, a user turn "
    "holding only the marker or a transcription prompt, one reply; every single-exchange record with `--task asr`; none "
    "with `--task none`), with or without `--no-audio`. The prompt is the system prompt and the user turn as written. "
    "`lint` only: the profile needs every record. The JSON report's `summary.transcript_style` holds the profile per "
    "input file and per prompt (the terminal and HTML reports show it too); `--ignore T002,T003` skips the profile."
)
_NORMALIZE = (
    "Write one style: `audiodata convert --normalize-transcripts basic` (lower case, no punctuation, no tags, any "
    "language) or `whisper-en` (Whisper's English normaliser: also numbers as digits, no fillers, American spelling); "
    "the original text stays in each changed row's `metadata` (`transcript_original`). Or give each style its own "
    "prompt ('Transcribe verbatim, with fillers.'), so the style is something the model is asked for."
)

register(
    "T002",
    "mixed-transcript-style",
    Severity.WARNING,
    "Transcripts under the same prompt differ in casing, punctuation or number style: the model learns a random style.",
    stage="dataset",
    doc=RuleDoc(
        what="Per prompt, each transcript is classed by casing (upper; cased: a capital first; lower), punctuation "
        "(none, punctuated; transcripts of 8 letters or more) and numbers (digits, or English number words), where it "
        "shows the trait. "
        f"A prompt with at least {MIN_VOTES} transcripts showing a trait, of which the styles other than the most common "
        f"one hold {MIN_SHARE:.0%} or more, is flagged once per trait, at the first record of a minority style. " + _SCOPE,
        why="The same request answered in two styles teaches the model that the style is chance: at inference it "
        "switches casing, punctuation or number format from clip to clip, and the word error rate of an unnormalised "
        "evaluation rises for nothing it misheard. Typical cause: two corpora concatenated (LibriSpeech's upper case "
        "without punctuation next to Common Voice's cased, punctuated sentences).",
        fix=_NORMALIZE,
        example="Ten transcripts like 'the cat sat on the mat' and one 'The cat sat on the mat.' under "
        "'<audio>Transcribe the audio.'",
    ),
)

register(
    "T003",
    "mixed-annotation-style",
    Severity.WARNING,
    "Under the same prompt one input file writes fillers or noise tags and another never does: verbatim and clean "
    "transcripts mixed.",
    stage="dataset",
    doc=RuleDoc(
        what="Fillers (uh, um, hmm, mhm, ...) and non-speech tags ([noise], <laugh>, ...) occur in some transcripts only, "
        "so a prompt is judged across its input files: a file whose transcripts under the prompt hold none, where they "
        f"would hold {MIN_EXPECTED:g} or more at the rate of the file that has the most (two or more), is flagged at its "
        "first record under the prompt. The chance that a file written the same way shows none is then under e^-10. " + _SCOPE,
        why="One corpus transcribes verbatim (fillers, [laughter], [noise]), the other clean: under one prompt the model "
        "learns to emit fillers and tags at random, and a noise tag it was taught on some clips becomes a "
        "hallucination on others.",
        fix=_NORMALIZE + " Both normalisers drop tags; `whisper-en` also drops fillers.",
        example="`verbatim.jsonl` with 'uh I think so' in 30 of 100 transcripts, `clean.jsonl` with none in 100, "
        "both under '<audio>Transcribe the audio.'",
    ),
)
