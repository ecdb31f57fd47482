"""Evaluation throughput of the workloads runtime against the bare harness doing the same work.

Run: PYTHONPATH=src .venv/bin/python bench/evaluate_bench.py [--rounds 3] [--samples 128]

`inspect`: commonlab's `evaluate` (harness inspect, scorer includes, greedy, 16 new tokens)
beside a bare `inspect_ai.eval` of the same task (the same samples, solver and scorer) on the
same model with the same model arguments. `lm_eval`: `evaluate` with harness lm_eval
(multiple choice, three choices a question) beside lm-eval's `HFLM` and `evaluate` on the
same task built by hand. The model is a GPT-2 of 4 layers x 128 hidden with a byte-level BPE
tokenizer learned from the questions. Both sides run in this process, in alternating order
each round, after one untimed run of each (imports, and the model Inspect keeps loaded
between evaluations, as it does for both sides); the figure is the median of the rounds, in
samples a second, each side timed with the clock around the whole call. `evaluate` does more
than the bare call: it streams the records from the dataset folder, reads its log back,
writes samples.jsonl and results.json and computes the samples' Merkle root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from commonlab.workloads.config import EvaluateConfig
from commonlab.workloads.runtime.evaluate import evaluate
from commonlab.workloads.runtime.paths import Paths

SIZE = {"n_layer": 4, "n_embd": 128, "n_head": 4}
MAX_NEW_TOKENS = 16
SEED = 0
EOS = "<|endoftext|>"
TASK = "sums"


def _records(count: int) -> list[dict]:
    rng = random.Random(7)
    records = []
    for _ in range(count):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        records.append(
            {
                "input": f"What is {a} plus {b}?",
                "target": str(a + b),
                "choices": [str(a + b), str(a + b + 1), str(abs(a - b))],
            }
        )
    return records


def _prepare(folder: Path, count: int) -> tuple[Path, Path]:
    """The dataset (JSONL) and a model folder: a tokenizer learned from the questions and a
    GPT-2 of SIZE initialised from SEED."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    records = _records(count)
    data = folder / "data"
    data.mkdir()
    with (data / "test.jsonl").open("w") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [f"{r['input']} {r['target']}" for r in records],
        vocab_size=1024,
        min_frequency=1,
        special_tokens=[EOS],
        show_progress=False,
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS
    )
    torch.manual_seed(SEED)
    config = GPT2Config(
        **SIZE,
        n_positions=256,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = folder / "model"
    GPT2LMHeadModel(config).save_pretrained(model)
    tokenizer.save_pretrained(model)
    return data, model


def _read(data: Path) -> list[dict]:
    return [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]


def _device() -> str:
    return "cuda:0" if torch.cuda.is_available() else "cpu"


# --- commonlab's runtime ---------------------------------------------------------------------


def _runtime(harness: str) -> Callable[[Path, Path], float]:
    def measure(data: Path, model: Path) -> float:
        config = EvaluateConfig(
            task=TASK, harness=harness, max_new_tokens=MAX_NEW_TOKENS, seed=SEED
        )
        with tempfile.TemporaryDirectory() as work:
            folder = Path(work)
            paths = Paths(data, model, folder / "out", folder / "scratch", folder / "m.jsonl")
            started = time.perf_counter()
            results = evaluate(config, paths)
            return results["samples"] / (time.perf_counter() - started)

    return measure


# --- the bare harnesses ----------------------------------------------------------------------


def bare_inspect(data: Path, model: Path) -> float:
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    with tempfile.TemporaryDirectory() as logs:
        started = time.perf_counter()
        samples = [
            Sample(id=number, input=r["input"], target=r["target"])
            for number, r in enumerate(_read(data), start=1)
        ]
        task = Task(name=TASK, dataset=MemoryDataset(samples), solver=generate(), scorer=includes())
        [log] = inspect_eval(
            task,
            model=f"hf/{model.name}",
            model_args={"model_path": str(model), "device": _device(), "do_sample": False},
            max_tokens=MAX_NEW_TOKENS,
            seed=SEED,
            log_dir=logs,
            log_format="eval",
            display="none",
            log_level="warning",
            ctl_server=False,
            score_display=False,
        )
        assert log.status == "success", log.error
        return len(samples) / (time.perf_counter() - started)


def bare_lm_eval(data: Path, model: Path) -> float:
    import datasets
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.evaluator import evaluate as lm_eval_evaluate
    from lm_eval.models.huggingface import HFLM

    started = time.perf_counter()
    docs = [{**r, "target": r["choices"].index(r["target"])} for r in _read(data)]
    task = ConfigurableTask(
        config={
            "task": TASK,
            "custom_dataset": lambda **_: {"test": datasets.Dataset.from_list(docs)},
            "test_split": "test",
            "doc_to_text": "input",
            "doc_to_choice": "choices",
            "doc_to_target": "target",
            "output_type": "multiple_choice",
            "num_fewshot": 0,
        }
    )
    task.set_fewshot_seed(seed=SEED)
    lm = HFLM(pretrained=str(model), device=_device(), batch_size=32)
    # The bootstrap in this process, as the runtime has it: lm-eval's default pool of worker
    # processes costs seconds to start and would measure that, not the evaluation.
    saved = os.environ.get("DISABLE_MULTIPROC")
    os.environ["DISABLE_MULTIPROC"] = "1"
    try:
        lm_eval_evaluate(
            lm=lm,
            task_dict={"tasks": {TASK: task}, "groups": {}},
            log_samples=True,
            bootstrap_iters=1000,
        )
    finally:
        if saved is None:
            os.environ.pop("DISABLE_MULTIPROC", None)
        else:
            os.environ["DISABLE_MULTIPROC"] = saved
    return len(docs) / (time.perf_counter() - started)


# --- the comparison --------------------------------------------------------------------------

Measure = Callable[[Path, Path], float]
PAIRS: dict[str, tuple[Measure, Measure]] = {
    "inspect (generate, includes)": (_runtime("inspect"), bare_inspect),
    "lm_eval (multiple choice)": (_runtime("lm_eval"), bare_lm_eval),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=128, help="records in the dataset")
    parser.add_argument("--only", choices=["inspect", "lm_eval"], help="one pair only")
    args = parser.parse_args()

    import logging

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    pairs = {n: p for n, p in PAIRS.items() if args.only is None or n.startswith(args.only)}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, {device}, "
        f"{torch.get_num_threads()} threads; {args.samples} samples, gpt2 4x128, "
        f"{MAX_NEW_TOKENS} new tokens (inspect); median of {args.rounds} rounds"
    )
    figures: dict[str, dict[str, list[float]]] = {
        name: {"commonlab": [], "bare": []} for name in pairs
    }
    with tempfile.TemporaryDirectory() as folder:
        data, model = _prepare(Path(folder), args.samples)
        for ours, bare in pairs.values():
            ours(data, model), bare(data, model)  # untimed: imports, the model loaded once
        for round_ in range(args.rounds):
            for name, (ours, bare) in pairs.items():
                sides = [("commonlab", ours), ("bare", bare)]
                # Alternate who goes first: a machine that gets busier weighs on both.
                for side, measure in sides if round_ % 2 == 0 else sides[::-1]:
                    figures[name][side].append(measure(data, model))
    print(f"{'evaluation':<30} {'commonlab samples/s':>20} {'bare samples/s':>15} {'ratio':>7}")
    for name, sides in figures.items():
        ours = statistics.median(sides["commonlab"])
        bare = statistics.median(sides["bare"])
        print(f"{name:<30} {ours:>20,.1f} {bare:>15,.1f} {ours / bare:>7.2f}")
    spread = {
        name: [f"{a / b:.2f}" for a, b in zip(s["commonlab"], s["bare"], strict=True)]
        for name, s in figures.items()
    }
    print("ratio each round: " + "; ".join(f"{n}: {', '.join(r)}" for n, r in spread.items()))


if __name__ == "__main__":
    main()
