"""Evaluation inside a job: a model version scored on a dataset version's records, with
Inspect (generate, then score each sample) or lm-eval (log-likelihood: multiple choice when
the records carry a `choices` column, else the likelihood of the target), offline.

The harness's own log goes to `out/`, and beside it `samples.jsonl`: one leaf a sample,
`{"id", "input", "output", "score"}` as canonical JSON, rebuilt from that log. Their RFC 9162
Merkle root is the evaluation's `sample_root`, so anyone holding the published log can show
that a published score came from it (`leaves_from_log`, then `sample_root_of`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from commonlab.errors import InvalidInput
from commonlab.record.canonical import canonical_json
from commonlab.record.merkle import leaf_hash, root_from_leaf_hashes
from commonlab.workloads.config import EvaluateConfig
from commonlab.workloads.runtime.data import columns_of, iter_records
from commonlab.workloads.runtime.device import choose_device
from commonlab.workloads.runtime.metrics import MetricsWriter
from commonlab.workloads.runtime.paths import Paths

T = TypeVar("T")

__all__ = [
    "CHOICES_COLUMN",
    "LEAVES_FILE",
    "LM_EVAL_LOG",
    "evaluate",
    "leaves_from_log",
    "sample_root_of",
]

LEAVES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"
LM_EVAL_LOG = "lm_eval.json"
# A record with this column is a multiple-choice question for lm-eval: a list of answers,
# the target naming the right one (its text or its index).
CHOICES_COLUMN = "choices"
# Records are numbered from 1 in the dataset's order, as Inspect numbers samples.
_FIRST_ID = 1


def evaluate(config: EvaluateConfig, paths: Paths) -> dict:
    """Evaluate `paths.model` on the records of `paths.data`; write the harness's log,
    `samples.jsonl` and `results.json` to `paths.out` and return the results."""
    model = _model_folder(paths)
    device = str(choose_device(config.device))
    paths.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _offline_harness():
        if config.harness == "inspect":
            log = _outside_event_loops(_run_inspect, config, model, device, paths)
        else:
            log = _run_lm_eval(config, model, device, paths)
        # The root is made from the log as written: what is published is what is proved.
        leaves, metrics = _read_log(log)
    elapsed = time.perf_counter() - started
    with (paths.out / LEAVES_FILE).open("wb") as lines:
        for leaf in leaves:
            lines.write(canonical_json(leaf) + b"\n")
    results = {
        "task": config.task,
        "harness": config.harness,
        "model": _model_name(model),
        "samples": len(leaves),
        "metrics": metrics,
        "sample_root": sample_root_of(leaves),
        "log": log.resolve().relative_to(paths.out.resolve()).as_posix(),
        "device": device,
        "elapsed_seconds": elapsed,
    }
    (paths.out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    with MetricsWriter(paths.metrics) as writer:
        writer.write(0, **{f"eval_{name}": value for name, value in metrics.items()})
    return results


def sample_root_of(leaves: Sequence[dict]) -> str:
    """The RFC 9162 Merkle root (hex) over the leaves' canonical JSON, in sample-id order."""
    ordered = sorted(leaves, key=lambda leaf: leaf["id"])
    return root_from_leaf_hashes([leaf_hash(canonical_json(leaf)) for leaf in ordered]).hex()


def leaves_from_log(log_path: Path) -> list[dict]:
    """Each sample's leaf, `{"id", "input", "output", "score"}`, in id order, read back from
    an evaluation's log: Inspect's `.eval` file or lm-eval's `lm_eval.json`."""
    leaves, _ = _read_log(Path(log_path))
    return leaves


def _read_log(log_path: Path) -> tuple[list[dict], dict[str, float]]:
    """The leaves and the aggregate metrics (numbers only) an evaluation's log holds."""
    if log_path.suffix == ".eval":
        return _read_inspect_log(log_path)
    if log_path.suffix == ".json":
        return _read_lm_eval_log(log_path)
    raise InvalidInput(
        f"{log_path.name} is not an evaluation log: give Inspect's .eval file or {LM_EVAL_LOG}"
    )


# Inspect ---------------------------------------------------------------------------------


def _outside_event_loops(run: Callable[..., T], *args: object) -> T:
    """`run(*args)` in this thread, or in a thread of its own when an asyncio event loop is
    already running in this one (a notebook's, or Playwright's synchronous API in a test
    process): Inspect starts a loop of its own, and asyncio allows one a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run(*args)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inspect") as pool:
        return pool.submit(run, *args).result()


def _run_inspect(config: EvaluateConfig, model: Path, device: str, paths: Paths) -> Path:
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.model import ModelInfo, set_model_info
    from inspect_ai.scorer import exact, includes, match
    from inspect_ai.solver import generate

    scorers = {"exact": exact, "includes": includes, "match": match}
    spec = config.data
    samples = [
        Sample(
            id=number,
            input=_text(record[spec.input_column], spec.input_column, number),
            target=_target_text(record[spec.target_column], spec.target_column, number),
        )
        for number, record in enumerate(
            iter_records(paths.data, spec, [spec.input_column, spec.target_column]),
            start=_FIRST_ID,
        )
    ]
    _require_samples(samples)
    task = Task(
        name=config.task,
        dataset=MemoryDataset(samples, name=config.task),
        solver=generate(),
        scorer=scorers[config.scorer](),
    )
    model_name = f"hf/{_model_name(model)}"
    # Inspect looks a model up by name for its context window; unknown, it would load the
    # name from the Hugging Face Hub (or a folder of that name): say what it is instead.
    set_model_info(model_name, ModelInfo(model=_model_name(model)))
    [log] = inspect_eval(
        task,
        model=model_name,
        # Greedy decoding: an evaluation scored twice gives the same outputs.
        model_args={"model_path": str(model), "device": device, "do_sample": False},
        max_tokens=config.max_new_tokens,
        seed=config.seed,
        log_dir=str(paths.out),
        log_format="eval",
        display="none",
        log_level="warning",
        # No control server: a job listens on no socket.
        ctl_server=False,
        score_display=False,
    )
    if log.status != "success":
        reason = log.error.message if log.error else log.status
        raise RuntimeError(f"Inspect did not finish the evaluation: {reason}")
    return Path(log.location)


def _read_inspect_log(log_path: Path) -> tuple[list[dict], dict[str, float]]:
    from inspect_ai.log import read_eval_log

    log = read_eval_log(str(log_path))
    leaves = []
    for sample in log.samples or []:
        # One scorer per task: its value ("C"/"I", or a number) is the sample's score.
        [score] = (sample.scores or {}).values()
        leaves.append(
            {
                "id": sample.id,
                "input": sample.input,
                "output": sample.output.completion,
                "score": score.value,
            }
        )
    # `accuracy` and `stderr` for Inspect's own scorers.
    scores = log.results.scores if log.results else []
    metrics = {name: float(metric.value) for s in scores for name, metric in s.metrics.items()}
    return sorted(leaves, key=lambda leaf: leaf["id"]), metrics


# lm-eval ---------------------------------------------------------------------------------


def _run_lm_eval(config: EvaluateConfig, model: Path, device: str, paths: Paths) -> Path:
    import numpy as np
    import torch
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.evaluator import evaluate as lm_eval_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.utils import handle_non_serializable

    docs = _lm_eval_docs(config, paths)
    multiple_choice = CHOICES_COLUMN in docs[0]
    task_config: dict[str, Any] = {
        "task": config.task,
        # The records read through data.py, in memory: lm-eval loads and downloads nothing.
        "custom_dataset": lambda **_: {"test": _dataset_of(docs)},
        "test_split": "test",
        "doc_to_text": "input",
        "num_fewshot": 0,
    }
    if multiple_choice:
        task_config |= {
            "output_type": "multiple_choice",
            "doc_to_choice": CHOICES_COLUMN,
            "doc_to_target": "target",
        }
    else:
        task_config |= {"output_type": "loglikelihood", "doc_to_target": "continuation"}
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    task = ConfigurableTask(config=task_config)
    task.set_fewshot_seed(seed=config.seed)
    language_model = HFLM(pretrained=str(model), device=device, batch_size=32)
    # lm-eval's evaluate, not simple_evaluate: the latter indexes every task lm-eval ships
    # and runs git and torch's environment report, none of which this evaluation uses.
    outcome = lm_eval_evaluate(
        lm=language_model,
        task_dict={"tasks": {config.task: task}, "groups": {}},
        log_samples=True,
        bootstrap_iters=1000,
    )
    log = {
        "harness": "lm_eval",
        "task": config.task,
        "output_type": task_config["output_type"],
        "results": outcome["results"][config.task],
        "higher_is_better": outcome.get("higher_is_better", {}).get(config.task, {}),
        "samples": outcome["samples"][config.task],
    }
    log_path = paths.out / LM_EVAL_LOG
    log_path.write_text(json.dumps(log, indent=1, default=handle_non_serializable) + "\n")
    return log_path


def _lm_eval_docs(config: EvaluateConfig, paths: Paths) -> list[dict]:
    """The records as lm-eval's documents, of one shape whatever the dataset's column types
    (a table needs them): text input, the right choice's index or the text to score."""
    spec = config.data
    multiple_choice = CHOICES_COLUMN in columns_of(paths.data, spec)
    columns = [spec.input_column, spec.target_column]
    if multiple_choice:
        columns.append(CHOICES_COLUMN)
    docs = []
    for number, record in enumerate(iter_records(paths.data, spec, columns), start=_FIRST_ID):
        text = _text(record[spec.input_column], spec.input_column, number)
        target = record[spec.target_column]
        if multiple_choice:
            choices = _choices(record[CHOICES_COLUMN], number)
            docs.append(
                {
                    "input": text,
                    CHOICES_COLUMN: choices,
                    "target": _choice_index(target, choices, spec.target_column, number),
                }
            )
        else:
            target = _target_text(target, spec.target_column, number)
            if not isinstance(target, str):
                raise InvalidInput(
                    f"record {number}: column {spec.target_column!r} holds several answers; "
                    f"lm-eval scores one target a record, or a {CHOICES_COLUMN!r} list"
                )
            # The target continues the input after a space, as lm-eval's choices do.
            continuation = target if target[:1].isspace() else f" {target}"
            docs.append({"input": text, "target": target, "continuation": continuation})
    _require_samples(docs)
    return docs


def _dataset_of(docs: list[dict]) -> Any:
    import datasets

    return datasets.Dataset.from_list(docs)


def _read_lm_eval_log(log_path: Path) -> tuple[list[dict], dict[str, float]]:
    log = json.loads(log_path.read_text())
    if log.get("harness") != "lm_eval":
        raise InvalidInput(f"{log_path.name} is not an lm-eval log written by an evaluation")
    leaves = []
    for sample in log["samples"]:
        # Each request's (log-likelihood, is greedy): the first is what the model answered.
        leaves.append(
            {
                "id": sample["doc_id"] + _FIRST_ID,
                "input": sample["arguments"][0][0],
                "output": [response[0] for response in sample["filtered_resps"]],
                "score": {name: sample[name] for name in sample["metrics"]},
            }
        )
    # lm-eval names its figures `acc,none`, `acc_stderr,none`: the metric, then the filter.
    metrics = {}
    for key, value in log["results"].items():
        name, _, selected = key.partition(",")
        if selected == "none" and isinstance(value, int | float):
            metrics[name] = float(value)
    return sorted(leaves, key=lambda leaf: leaf["id"]), metrics


# Shared ----------------------------------------------------------------------------------


def _model_folder(paths: Paths) -> Path:
    if paths.model is None:
        raise InvalidInput("an evaluation needs a model: give the model version to evaluate")
    if not (paths.model / "config.json").is_file():
        raise InvalidInput(
            "the model has no config.json: an evaluation takes a causal language model in the "
            "Hugging Face layout (config.json, weights, tokenizer files)"
        )
    return paths.model


def _model_name(model: Path) -> str:
    return model.name or "model"


def _text(value: Any, column: str, number: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(
            f"record {number}: column {column!r} holds {type(value).__name__}, not text"
        )
    return value


def _target_text(value: Any, column: str, number: int) -> str | list[str]:
    """A target as Inspect's scorers compare it: text, or a list of accepted answers."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise InvalidInput(
        f"record {number}: column {column!r} holds {type(value).__name__}; a target is "
        "text, a number, or a list of accepted answers"
    )


def _choices(value: Any, number: int) -> list[str]:
    if isinstance(value, list) and len(value) >= 2 and all(isinstance(item, str) for item in value):
        return value
    raise InvalidInput(
        f"record {number}: column {CHOICES_COLUMN!r} must be a list of at least two answers"
    )


def _choice_index(target: Any, choices: list[str], column: str, number: int) -> int:
    """The right answer as lm-eval wants it: its index among the choices."""
    if isinstance(target, str) and target in choices:
        return choices.index(target)
    if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(choices):
        return target
    raise InvalidInput(
        f"record {number}: column {column!r} ({target!r}) must be one of its "
        f"{CHOICES_COLUMN!r} or an index into them (0 to {len(choices) - 1})"
    )


def _require_samples(samples: Sequence[object]) -> None:
    if not samples:
        raise InvalidInput("the dataset has no records to evaluate")


@contextmanager
def _offline_harness() -> Iterator[None]:
    """The harnesses' settings for a job: nothing fetched from the Hub (the model and data are
    local folders), bootstrap statistics in this process, and Inspect's own state (sample
    buffer, traces) in a temporary folder rather than the job's home. Restored afterwards."""
    with tempfile.TemporaryDirectory(prefix="commonlab-evaluate-") as state:
        settings = {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "DISABLE_MULTIPROC": "1",
            "XDG_DATA_HOME": state,
        }
        saved = {name: os.environ.get(name) for name in settings}
        os.environ.update(settings)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
