"""Throughput of the workloads runtime against a bare script doing the same work.

Run: PYTHONPATH=src .venv/bin/python bench/workloads_bench.py [--rounds 5] [--threads 1]

`train`: commonlab's `train_causal_lm` (a GPT-2 of 4 layers x 128 hidden, sequences of 128
tokens, batches of 8) beside a hand-written PyTorch loop over the same model, the same packed
windows of the same text and the same AdamW. `finetune`: commonlab's `finetune` (LoRA, r=8
on c_attn, text data) on that model as a base, beside plain transformers + peft and the
same hand-written loop. Both sides run in this process, in alternating order each round, and
are timed over `--steps` optimizer steps after `--warmup` steps; the figure is the median of
the rounds, in tokens (predicted positions) a second. The runtime is timed from its own
metrics lines (written at the end of step `warmup` and of step `warmup + steps`, each with
the clock's reading added for this bench), the bare loop with the clock around the same
steps (both wait for each step's loss on the host). The clock (`--clock`) is the wall clock
on a GPU and by default this process's CPU time on a CPU, where other work sharing the
cores would otherwise swing the figures by tens of percent between rounds.

`evaluate`: commonlab's `evaluate` (Inspect, greedy generation of `--new-tokens` tokens,
the `includes` scorer) on that base model beside a bare `inspect_ai.eval` of the same task,
samples a second over the whole call (model loading included, on both sides); the runtime
also reads its log back and computes the samples' Merkle root, which the bare run does not.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as transformers_logging

from commonlab.workloads.config import (
    EvaluateConfig,
    FinetuneConfig,
    TokenizerSpec,
    TrainConfig,
)
from commonlab.workloads.runtime import loop as runtime_loop
from commonlab.workloads.runtime.evaluate import evaluate
from commonlab.workloads.runtime.finetune import finetune
from commonlab.workloads.runtime.lm import train_causal_lm
from commonlab.workloads.runtime.metrics import MetricsWriter
from commonlab.workloads.runtime.paths import Paths
from commonlab.workloads.runtime.tokenizer import learn_tokenizer

SIZE = {"n_layer": 4, "n_embd": 128, "n_head": 4}
SEQUENCE = 128
BATCH = 8
LEARNING_RATE = 3e-4
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["c_attn"]}
SEED = 0
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock: Callable[[], float] = time.perf_counter  # set from --clock
EVAL_TASK = "bench-next-word"

_WORDS = " ".join(
    [
        "the a cat dog bird child river mountain city sees likes finds follows paints calls",
        "quickly slowly over under near far red green blue old young small large and but",
    ]
).split()


def _texts(count: int) -> list[str]:
    rng = random.Random(7)
    return [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 40))) + "." for _ in range(count)
    ]


def _prepare(folder: Path, records: int, questions_count: int) -> tuple[Path, Path, Path]:
    """The text dataset (JSONL), questions to evaluate (the first words of a text, the next
    as the answer) and a base model folder: the tokenizer learned from the text, and a GPT-2
    of SIZE initialised from SEED (the model `train` builds, with the same seed)."""
    texts = _texts(records)
    data = folder / "data"
    data.mkdir()
    with (data / "train.jsonl").open("w") as fh:
        for text in texts:
            fh.write(json.dumps({"text": text}) + "\n")
    questions = folder / "questions"
    questions.mkdir()
    with (questions / "test.jsonl").open("w") as fh:
        for text in texts[:questions_count]:
            words = text.split()
            fh.write(json.dumps({"input": " ".join(words[:6]), "target": words[6]}) + "\n")
    tokenizer = learn_tokenizer(iter(texts), TokenizerSpec(vocab_size=2048, min_frequency=1))
    base = folder / "base"
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(_gpt2_config(tokenizer))
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    return data, questions, base


def _gpt2_config(tokenizer: PreTrainedTokenizerBase) -> GPT2Config:
    return GPT2Config(
        **SIZE,
        n_positions=SEQUENCE,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


# --- commonlab's runtime ---------------------------------------------------------------------


def _training(warmup: int, steps: int) -> dict:
    return {
        "seed": SEED,
        "sequence_length": SEQUENCE,
        "batch_size": BATCH,
        "max_steps": warmup + steps,
        "log_every": warmup if steps % warmup == 0 else 1,
        "checkpoint_every": 10_000_000,  # the last step's checkpoint comes after the timing
        "device": "auto",
        "optimizer": {
            "learning_rate": LEARNING_RATE,
            "weight_decay": WEIGHT_DECAY,
            "schedule": "constant",
            "grad_clip": GRAD_CLIP,
        },
    }


class _ClockedMetrics(MetricsWriter):
    """The runtime's metrics writer, adding the bench's clock to each line it writes."""

    def write(self, step: int, **values: float) -> None:
        super().write(step, **values, bench_clock=clock())


@contextlib.contextmanager
def _clocked_metrics() -> Iterator[None]:
    """The runtime with `_ClockedMetrics`, its log lines (a job's log) kept off the table."""
    original = runtime_loop.MetricsWriter
    runtime_loop.MetricsWriter = _ClockedMetrics  # type: ignore[misc]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        runtime_loop.MetricsWriter = original  # type: ignore[misc]


def _timed_from_metrics(metrics: Path, warmup: int, steps: int) -> float:
    readings = {}
    for line in metrics.read_text().splitlines():
        row = json.loads(line)
        readings[row["step"]] = row["bench_clock"]
    return steps * BATCH * SEQUENCE / (readings[warmup + steps] - readings[warmup])


def runtime_train(data: Path, base: Path, warmup: int, steps: int) -> float:
    config = TrainConfig.model_validate(
        {**_training(warmup, steps), "model": {"architecture": "gpt2", "size": SIZE}}
    )
    with tempfile.TemporaryDirectory() as work:
        paths = _paths(Path(work), data, base)
        with _clocked_metrics():
            train_causal_lm(config, paths)
        return _timed_from_metrics(paths.metrics, warmup, steps)


def runtime_finetune(data: Path, base: Path, warmup: int, steps: int) -> float:
    config = FinetuneConfig.model_validate(
        {**_training(warmup, steps), "method": "lora", "format": "text", "lora": LORA}
    )
    with tempfile.TemporaryDirectory() as work:
        paths = _paths(Path(work), data, base)
        with _clocked_metrics():
            finetune(config, paths)
        return _timed_from_metrics(paths.metrics, warmup, steps)


def runtime_evaluate(questions: Path, base: Path, new_tokens: int) -> float:
    config = EvaluateConfig(
        task=EVAL_TASK, harness="inspect", scorer="includes", max_new_tokens=new_tokens
    )
    with tempfile.TemporaryDirectory() as work:
        started = clock()
        results = evaluate(config, _paths(Path(work), questions, base))
        return results["samples"] / (clock() - started)


def _paths(work: Path, data: Path, base: Path) -> Paths:
    return Paths(data, base, work / "out", work / "scratch", work / "metrics.jsonl")


# --- the bare script -------------------------------------------------------------------------


def _windows(data: Path, tokenizer: object) -> torch.Tensor:
    """Every text joined with the end-of-text token, cut into windows of SEQUENCE + 1 tokens
    that overlap by one: what a plain script would pre-tokenize."""
    texts = [json.loads(line)["text"] for line in (data / "train.jsonl").read_text().splitlines()]
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
    count = (len(stream) - 1) // SEQUENCE
    return torch.tensor(
        [stream[i * SEQUENCE : i * SEQUENCE + SEQUENCE + 1] for i in range(count)],
        dtype=torch.long,
    )


def _bare_loop(model: torch.nn.Module, windows: torch.Tensor, warmup: int, steps: int) -> float:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=LEARNING_RATE,
    )
    started = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            started = clock()
        first = (step * BATCH) % (len(windows) - BATCH)
        batch = windows[first : first + BATCH].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=batch[:, :-1]).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the host waits for the step, as a script that prints its loss does
    return steps * BATCH * SEQUENCE / (clock() - started)


def bare_train(data: Path, base: Path, warmup: int, steps: int) -> float:
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(_gpt2_config(tokenizer))
    return _bare_loop(model, _windows(data, tokenizer), warmup, steps)


def bare_finetune(data: Path, base: Path, warmup: int, steps: int) -> float:
    from peft import LoraConfig, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules=LORA["target_modules"],
    )
    return _bare_loop(get_peft_model(model, lora), _windows(data, tokenizer), warmup, steps)


def bare_evaluate(questions: Path, base: Path, new_tokens: int) -> float:
    """What a person would write with Inspect alone: the task in memory, `eval` on it."""
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.model import ModelInfo, set_model_info
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as work:
        started = clock()
        rows = [json.loads(line) for line in (questions / "test.jsonl").read_text().splitlines()]
        samples = [
            Sample(id=i, input=row["input"], target=row["target"])
            for i, row in enumerate(rows, start=1)
        ]
        task = Task(
            name=EVAL_TASK,
            dataset=MemoryDataset(samples),
            solver=generate(),
            scorer=includes(),
        )
        # Offline, Inspect needs to be told the model (else it looks its name up on the Hub).
        set_model_info("hf/base", ModelInfo(model="base"))
        [log] = inspect_eval(
            task,
            model="hf/base",
            model_args={"model_path": str(base), "device": device, "do_sample": False},
            max_tokens=new_tokens,
            seed=SEED,
            log_dir=work,
            display="none",
            log_level="warning",
        )
        assert log.status == "success", log.error
        return len(samples) / (clock() - started)


# --- the comparison --------------------------------------------------------------------------

Measure = Callable[[Path, Path, int, int], float]
PAIRS: dict[str, tuple[Measure, Measure]] = {
    "train (gpt2 4x128, from scratch)": (runtime_train, bare_train),
    "finetune (lora r=8, text)": (runtime_finetune, bare_finetune),
}


def _in_turn(pair: tuple[Callable, Callable], round_: int) -> list[tuple[str, Callable]]:
    """(side, measure) both ways round in turn: a machine that gets busier weighs on both."""
    sides = list(zip(("commonlab", "bare"), pair, strict=True))
    return sides if round_ % 2 == 0 else sides[::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5, help="steps before the clock starts")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--records", type=int, default=3000, help="texts in the dataset")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (its default if unset)")
    parser.add_argument("--samples", type=int, default=128, help="samples to evaluate")
    parser.add_argument("--new-tokens", type=int, default=8, help="tokens generated a sample")
    parser.add_argument("--clock", choices=CLOCKS, help="wall on a GPU, cpu on a CPU if unset")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    global clock
    clock_name = args.clock or ("wall" if torch.cuda.is_available() else "cpu")
    clock = CLOCKS[clock_name]

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, {device}, "
        f"{torch.get_num_threads()} threads; batch {BATCH} x {SEQUENCE} tokens, "
        f"{args.warmup} warm-up + {args.steps} timed steps, median of {args.rounds} rounds, "
        f"{clock_name} clock"
    )
    figures: dict[str, dict[str, list[float]]] = {
        name: {"commonlab": [], "bare": []} for name in PAIRS
    }
    evaluations: dict[str, list[float]] = {"commonlab": [], "bare": []}
    with tempfile.TemporaryDirectory() as folder:
        data, questions, base = _prepare(Path(folder), args.records, args.samples)
        # Inspect's first evaluation in a process imports and sets up what later ones reuse.
        runtime_evaluate(questions, base, args.new_tokens)
        bare_evaluate(questions, base, args.new_tokens)
        for round_ in range(args.rounds):
            for name, pair in PAIRS.items():
                for side, measure in _in_turn(pair, round_):
                    figures[name][side].append(measure(data, base, args.warmup, args.steps))
            for side, measure in _in_turn((runtime_evaluate, bare_evaluate), round_):
                evaluations[side].append(measure(questions, base, args.new_tokens))
    print(f"{'workload':<34} {'commonlab':>12} {'bare':>12} {'ratio':>7}")
    for name, sides in [*figures.items(), ("evaluate (inspect)", evaluations)]:
        ours = statistics.median(sides["commonlab"])
        bare = statistics.median(sides["bare"])
        unit = "samples/s" if sides is evaluations else "tokens/s"
        print(f"{name:<34} {ours:>12,.1f} {bare:>12,.1f} {ours / bare:>7.2f}  {unit}")
    figures["evaluate (inspect)"] = evaluations
    spread = {
        name: [f"{a / b:.2f}" for a, b in zip(s["commonlab"], s["bare"], strict=True)]
        for name, s in figures.items()
    }
    print("ratio each round: " + "; ".join(f"{n}: {', '.join(r)}" for n, r in spread.items()))


if __name__ == "__main__":
    main()
