"""GRPO rewards (trainer/rewards.py): each built-in on the cases it must tell apart, user rewards by import path,
and the config's selection and weights checked before anything loads."""

from __future__ import annotations

import pytest

from trainer import rewards as R
from trainer.config import ConfigError, TrainConfig

CHOICES = ["a man", "a woman", "a child", "nobody"]


def conv(text: str) -> list[dict[str, str]]:
    """A completion as TRL hands it for conversational prompts."""
    return [{"role": "assistant", "content": text}]


def test_mcq_letter_reads_the_letter_however_it_is_written():
    said = ["B", "(B)", "B.", "The answer is b", "Answer: (B) a woman", "a woman", "<think>hm</think><answer>B</answer>"]
    assert R.mcq_letter([conv(s) for s in said], ["a woman"] * len(said), [CHOICES] * len(said)) == [1.0] * len(said)
    wrong = ["A", "(C) a child", "a man", "", "E", "Bob", "the answer is d"]
    assert R.mcq_letter([conv(s) for s in wrong], ["a woman"] * len(wrong), [CHOICES] * len(wrong)) == [0.0] * len(wrong)


def test_mcq_letter_does_not_apply_without_choices_and_accepts_a_letter_answer():
    assert R.mcq_letter(["B"], ["a woman"], [None]) == [None]
    assert R.mcq_letter(["B"], ["B"], [CHOICES]) == [1.0]  # a bare letter as the reference
    assert R.mcq_letter(["B"], ["nothing of these"], [CHOICES]) == [None]  # the answer is not a choice: unscorable


def test_exact_match_compares_normalised_and_the_answer_span():
    assert R.exact_match(["Hello, World!", "hello world.", "<answer>hello world</answer>", "hello"], ["hello world"] * 4) == [
        1.0,
        1.0,
        1.0,
        0.0,
    ]
    assert R.exact_match(["x"], [None]) == [None]


def test_wer_reward_is_one_minus_wer_clipped():
    out = R.wer(["the quick brown fox", "the quick fox", "", "a b c d e f g h"], ["The quick brown fox."] * 3 + ["x"])
    assert out[0] == 1.0 and out[1] == pytest.approx(0.75) and out[2] == 0.0 and out[3] == 0.0
    assert R.wer(["anything"], ["..."]) == [None]  # a reference of punctuation only has no WER


def test_format_wants_think_then_answer_and_nothing_else():
    assert R.format(
        [conv("<think>x</think> <answer>B</answer>"), conv("<answer>B</answer>"), conv("B <think>x</think><answer>B</answer>")]
    ) == [1.0, 0.0, 0.0]


def test_answer_picks_the_check_by_task():
    out = R.answer(
        ["B", "the quick brown fox", "Paris"],
        answer=["a woman", "the quick brown dog", "paris"],
        choices=[CHOICES, None, None],
        task=["mcq", "asr", "qa"],
    )
    assert out == [1.0, pytest.approx(0.75), 1.0]


def user_reward(completions: list, **kw: object) -> list[float]:
    """A user reward for the import-path test: the completion's length in characters."""
    return [float(len(R.completion_text(c))) for c in completions]


def test_user_rewards_resolve_by_import_path_and_bad_ones_are_named():
    for path in ("tests.training.test_rewards:user_reward", "tests.training.test_rewards.user_reward"):
        func = R.resolve(path)
        assert func.__name__ == "user_reward" and func([conv("abc")]) == [3.0]
    with pytest.raises(R.RewardError, match="not built in"):
        R.resolve("exact")
    with pytest.raises(R.RewardError, match="cannot import"):
        R.resolve("no_such_pkg.mod:f")
    with pytest.raises(R.RewardError, match="has no function 'nope'"):
        R.resolve("tests.training.test_rewards:nope")


def test_score_weights_and_skips_what_does_not_apply():
    columns = {"answer": ["a woman"] * 2, "choices": [CHOICES, None]}
    out = R.score([R.mcq_letter, R.exact_match], [2.0, 0.5], [conv("B"), conv("a woman")], columns)
    assert out[0] == {"rewards": {"mcq_letter": 1.0, "exact_match": 0.0}, "reward": 2.0}
    assert out[1] == {"rewards": {"mcq_letter": None, "exact_match": 1.0}, "reward": 0.5}


def grpo(tmp_path, **kw: object) -> TrainConfig:
    from tests.training.rl_fixture import mcq_row, write_rl_dataset

    root = tmp_path / "rl"
    if not root.exists():
        write_rl_dataset(root, [mcq_row(0, "clip01_22k.wav")])
    return TrainConfig.from_dict({"task": "grpo", "model": "m", "data": str(root), **kw})


def test_config_selects_and_weighs_rewards_and_checks_them_up_front(tmp_path):
    cfg = grpo(tmp_path, reward_funcs="mcq_letter, format", reward_weights="1, 0.2")
    assert cfg.reward_names == ["mcq_letter", "format"] and cfg.reward_weight_list == [1.0, 0.2]
    assert cfg.config_name == "rl" and grpo(tmp_path).reward_names == ["answer"]
    assert grpo(tmp_path, reward_funcs=["wer", "tests.training.test_rewards:user_reward"]).reward_weight_list == [1.0, 1.0]
    bad = {
        "reward_funcs": ("exact", "not built in"),
        "reward_weights": ("1,2", "2 values for 1 rewards"),
        "num_generations": (1, "num_generations must be >= 2"),
        "loss_type": ("sigmoid", "loss_type for grpo"),
        "scale_rewards": ("yes", "scale_rewards"),
        "vllm_tensor_parallel_size": (0, "vllm_tensor_parallel_size >= 1"),
        "eval_split": ("validation", r"no split 'validation' \(no data/rl/validation-\*.parquet shards\)"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            grpo(tmp_path, **{key: value})
    with pytest.raises(ConfigError, match="multiple of num_generations"):
        grpo(tmp_path, per_device_batch_size=6, num_generations=4)
    assert grpo(tmp_path, beta=0.0).beta == 0.0  # GRPO without a KL term is allowed (TRL's default)


def test_config_refuses_a_folder_without_rl_shards(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="data/rl/train-"):
        TrainConfig.from_dict({"task": "grpo", "model": "m", "data": str(tmp_path / "empty")})


def test_cli_names_a_bad_reward_and_exits_2(tmp_path, capsys):
    from trainer.cli import main

    data = grpo(tmp_path).data
    assert main(["train", "grpo", "--model", "m", "--data", data, "--rewards", "mcq_letter,my_missing_pkg:f"]) == 2
    assert "reward 'my_missing_pkg:f': cannot import my_missing_pkg" in capsys.readouterr().err
