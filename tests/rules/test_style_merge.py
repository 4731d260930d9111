"""StyleStats.merge (a lint worker's chunk of transcript styles, grouped by prompt) builds the very profiles that
StyleStats.add gives record by record: the same pairs tracked or untracked past MAX_PROMPTS, the same names admitted
past MAX_NAMES in the same order, punctuation rates summed to the same float, the same first records."""

from __future__ import annotations

import random

import pytest

from audiodata.rules import style as style_mod
from audiodata.rules.style import ChunkStyles, Style, StyleStats


def _style(rng: random.Random) -> Style:
    names = ["uh", "um", "er", "hmm", "mhm", "erm", "mm", "uhm"]
    fillers = tuple(rng.choice(names) for _ in range(rng.choice([0, 0, 0, 0, 1, 2])))
    tags = tuple(rng.choice(["[noise]", "<laugh>", "[cough]"]) for _ in range(rng.choice([0, 0, 0, 1, 2])))
    return Style(
        rng.choice([None, "lower", "upper", "cased"]),
        rng.choice([None, "none", "punctuated"]),
        rng.choice([None, rng.random() / 3, 0.1, 1 / 7]),
        rng.choice([None, None, "digits", "words"]),
        fillers,
        tags,
    )


def _state(stats: StyleStats) -> object:
    """Everything the profiles hold, orders included where a report depends on them (names: most_common ties)."""

    def profile(p: style_mod.Profile) -> object:
        names = {a: list(p.names[a].items()) for a in style_mod.ANNOTATIONS}
        return (p.records, p.combos, p.punct_sum, p.punct_n, p.with_fillers, p.with_tags, names, p.first, p.start)

    pairs = [(k, profile(p)) for k, p in stats.pairs.items()]
    untracked = [(n, profile(p)) for n, p in stats.untracked.items()]
    return stats.records, sorted(stats.prompts), pairs, untracked


@pytest.mark.parametrize("seed", range(24))
def test_merged_chunks_are_records_added_one_by_one(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(style_mod, "MAX_PROMPTS", 4)  # most prompts go untracked: several groups into one profile
    rng = random.Random(seed)
    monkeypatch.setattr(style_mod, "MAX_NAMES", 2 + seed % 5)  # names past the cap: admission order matters
    prompts = [f"prompt {k}" for k in range(9)]
    one, many = StyleStats(), StyleStats()
    for n in range(3):  # files
        index = 0
        for _ in range(rng.randrange(1, 6)):  # chunks of the file
            chunk = ChunkStyles()
            rows = []
            for pos in range(rng.randrange(0, 60)):
                if rng.random() < 0.3:
                    continue  # a record without a transcript
                line = None if rng.random() < 0.1 else 10 * (index + pos) + 1
                args = (rng.choice(prompts[: 2 + n * 3]), f"field{rng.randrange(2)}", _style(rng))
                one.add(n, index + pos, line, *args)
                chunk.add(n, pos, line, *args)
                rows.append((pos, line))
            lines = {pos: line for pos, line in rows}
            many.merge(n, chunk, lambda i, base=index, ln=lines: (base + i, -1 if ln[i] is None else ln[i]))
            index += 60
    assert _state(many) == _state(one)
    assert one.untracked and any(p.names["fillers"] for p in one.pairs.values())
    assert many.summary(["a", "b", "c"]) == one.summary(["a", "b", "c"])
    assert list(many.mixes()) == list(one.mixes()) and list(many.annotation_mixes()) == list(one.annotation_mixes())
