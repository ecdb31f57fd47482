"""Evaluation inside a job (runtime/evaluate.py): a tiny GPT-2 scored on eight QA records by
Inspect and by lm-eval, offline; the per-sample leaves, their Merkle root, and the root
rebuilt from the published log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from commonlab.errors import InvalidInput
from commonlab.workloads.config import DataSpec, EvaluateConfig
from commonlab.workloads.runtime.evaluate import (
    LEAVES_FILE,
    LM_EVAL_LOG,
    evaluate,
    leaves_from_log,
    sample_root_of,
)
from commonlab.workloads.runtime.paths import Paths
from tests.workloads.runtime.base_model import base_model_fixture  # noqa: F401 (base_model)

PAIRS = [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 9)]


def _write_dataset(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.fixture(scope="module")
def qa_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight questions with their answer and three choices (the answer among them)."""
    records = [
        {
            "input": f"What is {a} plus {b}?",
            "target": str(a + b),
            "choices": [str(a + b + 10), str(a + b), "seven"],
        }
        for a, b in PAIRS
    ]
    return _write_dataset(tmp_path_factory.mktemp("qa"), records)


def _paths(base: Path, data: Path, model: Path | None) -> Paths:
    return Paths(data, model, base / "out", base / "scratch", base / "metrics.jsonl")


@pytest.fixture(scope="module")
def inspect_run(
    qa_data: Path, base_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Paths]:
    paths = _paths(tmp_path_factory.mktemp("inspect"), qa_data, base_model)
    config = EvaluateConfig(task="qa-sums", scorer="includes", max_new_tokens=6, seed=7)
    return evaluate(config, paths), paths


def _leaves_file(paths: Paths) -> list[dict]:
    return [json.loads(line) for line in (paths.out / LEAVES_FILE).read_text().splitlines()]


def test_inspect_reports_its_metrics_samples_and_log(inspect_run: tuple[dict, Paths]) -> None:
    from inspect_ai.log import read_eval_log

    results, paths = inspect_run
    assert results["task"] == "qa-sums"
    assert results["harness"] == "inspect"
    assert results["samples"] == len(PAIRS)
    assert set(results["metrics"]) == {"accuracy", "stderr"}
    log = read_eval_log(str(paths.out / results["log"]))
    assert log.status == "success"
    assert [sample.input for sample in log.samples] == [f"What is {a} plus {b}?" for a, b in PAIRS]
    assert json.loads((paths.out / "results.json").read_text()) == results
    [line] = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    assert line["eval_accuracy"] == results["metrics"]["accuracy"]


def test_inspect_accuracy_is_the_share_of_correct_leaves(inspect_run: tuple[dict, Paths]) -> None:
    results, paths = inspect_run
    leaves = _leaves_file(paths)
    correct = sum(leaf["score"] == "C" for leaf in leaves)
    assert results["metrics"]["accuracy"] == pytest.approx(correct / len(leaves))


def test_the_samples_file_and_the_log_both_give_the_reported_root(
    inspect_run: tuple[dict, Paths],
) -> None:
    results, paths = inspect_run
    from_file = _leaves_file(paths)
    from_log = leaves_from_log(paths.out / results["log"])
    assert from_log == from_file
    assert [leaf["id"] for leaf in from_file] == list(range(1, len(PAIRS) + 1))
    assert set(from_file[0]) == {"id", "input", "output", "score"}
    assert sample_root_of(from_file) == results["sample_root"]
    # The order the leaves are given in does not matter: the root is in sample-id order.
    assert sample_root_of(list(reversed(from_file))) == results["sample_root"]


def test_one_altered_output_changes_the_root(inspect_run: tuple[dict, Paths]) -> None:
    from inspect_ai.log import read_eval_log, write_eval_log

    results, paths = inspect_run
    leaves = leaves_from_log(paths.out / results["log"])
    leaves[3] = {**leaves[3], "output": leaves[3]["output"] + "!"}
    assert sample_root_of(leaves) != results["sample_root"]
    # The same edit made in a copy of the log itself.
    log = read_eval_log(str(paths.out / results["log"]))
    log.samples[3].output.completion = "an answer nobody gave"
    altered = paths.scratch / "altered.eval"
    paths.scratch.mkdir(parents=True, exist_ok=True)
    write_eval_log(log, str(altered))
    assert sample_root_of(leaves_from_log(altered)) != results["sample_root"]


def test_the_same_seed_gives_the_same_outputs_even_where_an_event_loop_runs(
    inspect_run: tuple[dict, Paths], qa_data: Path, base_model: Path, tmp_path: Path
) -> None:
    first, first_paths = inspect_run
    paths = _paths(tmp_path, qa_data, base_model)
    config = EvaluateConfig(task="qa-sums", scorer="includes", max_new_tokens=6, seed=7)

    async def inside_a_running_loop() -> dict:
        # As in a notebook, or a test process where Playwright's synchronous API runs one.
        return evaluate(config, paths)

    again = asyncio.run(inside_a_running_loop())
    assert _leaves_file(paths) == _leaves_file(first_paths)
    assert again["sample_root"] == first["sample_root"]


def test_a_missing_input_column_names_the_columns_there(
    qa_data: Path, base_model: Path, tmp_path: Path
) -> None:
    config = EvaluateConfig(task="qa-sums", data=DataSpec(input_column="question"))
    with pytest.raises(InvalidInput) as refused:
        evaluate(config, _paths(tmp_path, qa_data, base_model))
    assert "'question'" in refused.value.message
    assert "choices, input, target" in refused.value.message
    assert "data.input_column" in refused.value.message


def test_an_evaluation_without_a_model_is_refused(qa_data: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="needs a model"):
        evaluate(EvaluateConfig(task="qa-sums"), _paths(tmp_path, qa_data, None))
    with pytest.raises(InvalidInput, match=r"config\.json"):
        evaluate(EvaluateConfig(task="qa-sums"), _paths(tmp_path, qa_data, tmp_path))


def test_lm_eval_scores_multiple_choice_by_log_likelihood(
    qa_data: Path, base_model: Path, tmp_path: Path
) -> None:
    paths = _paths(tmp_path, qa_data, base_model)
    results = evaluate(EvaluateConfig(task="qa-sums", harness="lm_eval"), paths)
    assert results["harness"] == "lm_eval"
    assert results["log"] == LM_EVAL_LOG
    assert results["samples"] == len(PAIRS)
    assert {"acc", "acc_stderr", "acc_norm"} <= set(results["metrics"])
    leaves = leaves_from_log(paths.out / LM_EVAL_LOG)
    assert leaves == _leaves_file(paths)
    assert sample_root_of(leaves) == results["sample_root"]
    # Each leaf holds the three choices' log-likelihoods; right when the answer (index 1)
    # is the likeliest, and acc is the share of right leaves.
    for leaf in leaves:
        assert len(leaf["output"]) == 3
        likeliest = leaf["output"].index(max(leaf["output"]))
        assert leaf["score"]["acc"] == float(likeliest == 1)
    share = sum(leaf["score"]["acc"] for leaf in leaves) / len(leaves)
    assert results["metrics"]["acc"] == pytest.approx(share)


def test_lm_eval_without_choices_scores_the_targets_likelihood(
    base_model: Path, tmp_path: Path
) -> None:
    data = _write_dataset(
        tmp_path / "data",
        [{"input": f"{a} plus {b} is", "target": a + b} for a, b in PAIRS[:4]],
    )
    paths = _paths(tmp_path, data, base_model)
    results = evaluate(EvaluateConfig(task="sums", harness="lm_eval"), paths)
    assert {"perplexity", "acc"} <= set(results["metrics"])
    leaves = _leaves_file(paths)
    assert [len(leaf["output"]) for leaf in leaves] == [1] * 4
    assert sample_root_of(leaves_from_log(paths.out / LM_EVAL_LOG)) == results["sample_root"]


def test_lm_eval_refuses_a_target_that_is_not_a_choice(base_model: Path, tmp_path: Path) -> None:
    data = _write_dataset(
        tmp_path / "data",
        [{"input": "1 plus 1 is", "target": "2", "choices": ["3", "4"]}],
    )
    with pytest.raises(InvalidInput, match="record 1: column 'target'"):
        evaluate(EvaluateConfig(task="sums", harness="lm_eval"), _paths(tmp_path, data, base_model))
