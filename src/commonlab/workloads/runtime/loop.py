"""The training loop every training workload shares (causal LM, speech, fine-tuning): AdamW
with warm-up and a schedule, gradient accumulation, clipping, mixed precision, DDP,
metrics, checkpoints that resume to the same loss trajectory, and a clean stop on SIGTERM.

A workload hands it a task, an object with three methods and a model:

    class TrainingTask(Protocol):
        model: torch.nn.Module          # built on the CPU; the loop moves it to the device
        def examples(self, start: int) -> Iterator[Example]
            # The global stream of training examples from index `start` on, endless (repeat
            # the data: `repeat_epochs` does it) and a pure function of `start`: the loop
            # asks for `examples(step * batch_size)` and reads `batch_size` a step, so a
            # resumed run sees the same batches. Keep examples cheap (every process reads
            # them all and keeps its share); do heavy work (audio decoding) in `collate`.
        def collate(self, examples: list[Example]) -> dict[str, torch.Tensor]
            # One micro-batch, on the CPU; the loop moves the tensors to the device.
        def loss(self, model, batch) -> tuple[torch.Tensor, int | torch.Tensor]
            # The SUMMED loss of the micro-batch over what it counts (tokens, frames,
            # sequences) and that count. Call `model(...)`, not `self.model`: under DDP
            # `model` is the wrapper that synchronises gradients.
        find_unused_parameters: bool    # optional (default False): set it when some
            # trainable parameters get no gradient in some steps (DDP must then look)

    results = train(task, config, paths=paths, runtime=runtime)

`config` is a TrainConfig or FinetuneConfig (seed, optimizer, batch_size, micro_batch_size,
max_steps, checkpoint_every, log_every are read); `runtime` comes from `device.start`. The
step's loss is the sum of every process's summed losses over the sum of their counts, so
it is the same mean whatever the split into processes and micro-batches. `train` returns
the contract's training results; the caller saves the model (on `runtime.is_main`) and
writes results.json.

Checkpoints go to `paths.scratch/step-NNNNNNNN/` (written to a temporary folder, renamed,
then named in `paths.scratch/latest`): model, optimizer, scheduler and grad-scaler state,
every process's RNG states, the step and the losses so far. A run that finds `latest`
resumes from it. Only the latest checkpoint is kept. SIGTERM (cancel, time limit) makes the
loop finish the step it is in, checkpoint it, and exit with status 143.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from commonlab.compute.rules import CHECKPOINT_METRIC
from commonlab.errors import InvalidInput
from commonlab.workloads.config import FinetuneConfig, TrainConfig
from commonlab.workloads.runtime.device import Runtime, barrier
from commonlab.workloads.runtime.metrics import MetricsWriter
from commonlab.workloads.runtime.paths import Paths

__all__ = [
    "LATEST",
    "BatchPlan",
    "TrainingInterrupted",
    "TrainingTask",
    "latest_checkpoint",
    "learning_rate_factor",
    "plan_batches",
    "repeat_epochs",
    "step_batches",
    "train",
]

LATEST = "latest"
SIGTERM_EXIT = 128 + signal.SIGTERM
Example = TypeVar("Example")


class TrainingTask(Protocol):
    model: torch.nn.Module

    def examples(self, start: int) -> Iterator[Any]: ...

    def collate(self, examples: list[Any]) -> dict[str, torch.Tensor]: ...

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, int | torch.Tensor]: ...


class TrainingInterrupted(SystemExit):
    """SIGTERM stopped training after a checkpoint: the process exits 143 with no traceback."""

    def __init__(self, step: int) -> None:
        super().__init__(SIGTERM_EXIT)
        self.step = step


@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step's `global_batch` examples split: `per_process` to each of
    `world_size` processes, each doing `accumulation` forward passes of `micro_batch`."""

    global_batch: int
    world_size: int
    rank: int
    micro_batch: int

    @property
    def per_process(self) -> int:
        return self.global_batch // self.world_size

    @property
    def accumulation(self) -> int:
        return self.per_process // self.micro_batch


def plan_batches(
    batch_size: int, micro_batch_size: int | None, *, world_size: int, rank: int
) -> BatchPlan:
    if batch_size % world_size:
        raise InvalidInput(
            f"batch_size {batch_size} does not split evenly over {world_size} processes: "
            f"use a multiple of {world_size}"
        )
    per_process = batch_size // world_size
    micro = micro_batch_size or per_process
    if micro > per_process or per_process % micro:
        raise InvalidInput(
            f"micro_batch_size {micro} must divide the {per_process} examples each of the "
            f"{world_size} processes takes a step (batch_size {batch_size})"
        )
    return BatchPlan(batch_size, world_size, rank, micro)


def step_batches(task: TrainingTask, plan: BatchPlan, start_step: int) -> Iterator[list[list]]:
    """For each step from `start_step` on, this process's micro-batches of examples: its
    contiguous share of the step's `global_batch` examples of the global stream."""
    stream = task.examples(start_step * plan.global_batch)
    first = plan.rank * plan.per_process
    while True:
        step_examples = list(islice(stream, plan.global_batch))
        if len(step_examples) < plan.global_batch:
            raise RuntimeError("a task's examples() must not end: repeat the data")
        mine = step_examples[first : first + plan.per_process]
        yield [mine[i : i + plan.micro_batch] for i in range(0, plan.per_process, plan.micro_batch)]


def repeat_epochs(
    epoch: Callable[[], Iterable[Example]], *, start: int = 0, empty: str
) -> Iterator[Example]:
    """`epoch()`'s items over and over, from item `start` of that endless stream on. Once the
    length of an epoch is known, whole epochs before `start` are skipped without reading
    them. `empty` is the InvalidInput message when an epoch has nothing."""
    to_skip = start
    length: int | None = None
    while True:
        count = 0
        for item in epoch():
            count += 1
            if to_skip:
                to_skip -= 1
                continue
            yield item
        if count == 0:
            raise InvalidInput(empty)
        if length is None:
            length = count
            to_skip %= length


def learning_rate_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """The multiple of the peak learning rate at (0-based) `step`: a linear warm-up over
    `warmup` steps, then constant, or decaying linearly or along a cosine towards 0 at
    `total`."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def latest_checkpoint(scratch: Path) -> Path | None:
    """The checkpoint `scratch/latest` names, or None when there is none."""
    pointer = scratch / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    folder = scratch / name
    if not name or "/" in name or not (folder / "state.pt").is_file():
        raise InvalidInput(
            f"the checkpoint folder's {LATEST!r} names {name!r}, which holds no checkpoint: "
            "remove the scratch folder's contents to start afresh"
        )
    return folder


def train(
    task: TrainingTask,
    config: TrainConfig | FinetuneConfig,
    *,
    paths: Paths,
    runtime: Runtime,
) -> dict:
    """Train `task.model` for `config.max_steps` optimizer steps (resuming from the latest
    checkpoint in `paths.scratch`) and return the contract's training results."""
    plan = plan_batches(
        config.batch_size,
        config.micro_batch_size,
        world_size=runtime.world_size,
        rank=runtime.rank,
    )
    model = task.model.to(runtime.device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: learning_rate_factor(
            step,
            warmup=config.optimizer.warmup_steps,
            total=config.max_steps,
            schedule=config.optimizer.schedule,
        ),
    )
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.precision_name == "fp16")
    progress = _Progress(step=0, tokens=0, losses=[])
    resumed = latest_checkpoint(paths.scratch)
    if resumed is not None:
        progress = _load_checkpoint(resumed, model, optimizer, scheduler, scaler, runtime, plan)
    else:
        _seed_everything(config.seed + runtime.rank)
    resumed_from = progress.step
    if resumed is not None and runtime.is_main:
        print(f"resuming from {resumed.name}: step {resumed_from} of {config.max_steps}",
              flush=True)  # fmt: skip
    wrapped: torch.nn.Module = model
    if runtime.distributed:
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        wrapped = DistributedDataParallel(
            model,
            device_ids=device_ids,
            find_unused_parameters=bool(getattr(task, "find_unused_parameters", False)),
        )

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(
            runtime.device.type,
            dtype=runtime.dtype,
            enabled=runtime.dtype != torch.float32,
        )

    # The backward pass sees the summed loss times a constant that is the same in every
    # process; the exact mean (sum over all counts) is restored before clipping.
    backward_scale = 1.0 / plan.per_process
    batches = step_batches(task, plan, progress.step)
    started = time.perf_counter()
    window_start, window_tokens = started, 0
    run_tokens = 0
    with MetricsWriter(paths.metrics, enabled=runtime.is_main) as metrics, _StopOnSigterm() as stop:
        while progress.step < config.max_steps:
            step = progress.step
            loss_sum = torch.zeros((), device=runtime.device, dtype=torch.float64)
            count = torch.zeros((), device=runtime.device, dtype=torch.float64)
            micro_batches = next(batches)
            for index, examples in enumerate(micro_batches):
                batch = _to_device(task.collate(examples), runtime.device)
                last = index == len(micro_batches) - 1
                # Gradients are exchanged once a step, on the last micro-batch.
                exchange = last or not runtime.distributed
                with contextlib.nullcontext() if exchange else wrapped.no_sync():
                    with autocast():
                        loss, counted = task.loss(wrapped, batch)
                    scaler.scale(loss * backward_scale).backward()
                loss_sum += loss.detach().double()
                count += counted
            # One exchange carries the loss, the count and whether any process was told to
            # stop, so all stop at the same step boundary.
            totals = torch.stack([loss_sum, count, loss_sum.new_tensor(float(stop.requested))])
            if runtime.distributed:
                dist.all_reduce(totals)
            global_loss, global_count, stop_votes = totals.tolist()
            scaler.unscale_(optimizer)
            # DDP averaged the gradients over processes; make them the mean over counts.
            factor = runtime.world_size / (max(global_count, 1.0) * backward_scale)
            grads = [p.grad for p in trainable if p.grad is not None]
            if grads:
                torch._foreach_mul_(grads, factor)
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.optimizer.grad_clip)
            learning_rate = scheduler.get_last_lr()[0]
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()

            step_loss = global_loss / max(global_count, 1.0)
            step_tokens = int(global_count)
            progress.step = step + 1
            progress.tokens += step_tokens
            progress.losses.append(step_loss)
            run_tokens += step_tokens
            window_tokens += step_tokens
            if progress.step % config.log_every == 0 or progress.step == config.max_steps:
                now = time.perf_counter()
                metrics.write(
                    progress.step,
                    loss=step_loss,
                    learning_rate=learning_rate,
                    tokens_per_second=window_tokens / max(now - window_start, 1e-9),
                    grad_norm=float(grad_norm),
                )
                if runtime.is_main:
                    # The job's log tells how it goes, as the metrics do on its page.
                    print(
                        f"step {progress.step}/{config.max_steps} loss {step_loss:.4f} "
                        f"lr {learning_rate:.3g} "
                        f"{window_tokens / max(now - window_start, 1e-9):,.0f} tokens/s",
                        flush=True,
                    )
                window_start, window_tokens = now, 0
            stopping = stop_votes > 0
            if (
                progress.step % config.checkpoint_every == 0
                or progress.step == config.max_steps
                or stopping
            ):
                _save_checkpoint(
                    paths.scratch, model, optimizer, scheduler, scaler, progress, runtime, plan
                )
                metrics.write(progress.step, **{CHECKPOINT_METRIC: progress.step})
            if stopping:
                if runtime.is_main:
                    print(
                        f"training stopped by SIGTERM after step {progress.step}; "
                        "its checkpoint is saved and a resubmission resumes from it",
                        file=sys.stderr,
                        flush=True,
                    )
                raise TrainingInterrupted(progress.step)
    elapsed = time.perf_counter() - started
    return {
        "steps": progress.step,
        "tokens": progress.tokens,
        "final_loss": progress.losses[-1] if progress.losses else None,
        "losses": list(progress.losses),
        "elapsed_seconds": elapsed,
        "tokens_per_second": run_tokens / elapsed if elapsed > 0 else 0.0,
        "parameters": sum(p.numel() for p in model.parameters()),
        "resumed_from_step": resumed_from,
        "device": str(runtime.device),
        "precision": runtime.precision_name,
        "processes": runtime.world_size,
    }


@dataclass
class _Progress:
    step: int
    tokens: int
    losses: list[float]


def _optimizer(model: torch.nn.Module, config: TrainConfig | FinetuneConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, norms' gains)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    if not decay and not no_decay:
        raise InvalidInput("the model has no trainable parameters")
    groups = [
        {"params": decay, "weight_decay": config.optimizer.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.optimizer.learning_rate)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        name: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for name, value in batch.items()
    }


class _StopOnSigterm:
    """Turns SIGTERM into a request the loop honours at the next step boundary (only the
    main thread can hold a signal handler; elsewhere SIGTERM keeps its default)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def __enter__(self) -> _StopOnSigterm:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


# --- checkpoints ------------------------------------------------------------------------


def _checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def _save_checkpoint(
    scratch: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    progress: _Progress,
    runtime: Runtime,
    plan: BatchPlan,
) -> None:
    """Every process writes its RNG states into a temporary folder, the first one the
    shared state; then the folder is renamed and `latest` replaced, so a reader finds
    either the previous checkpoint or this one whole."""
    name = _checkpoint_name(progress.step)
    temporary = scratch / f".tmp-{name}"
    if runtime.is_main:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
    barrier(runtime)
    torch.save(_rng_states(), temporary / f"rng-{runtime.rank}.pt")
    if runtime.is_main:
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
            },
            temporary / "state.pt",
        )
        (temporary / "progress.json").write_text(
            json.dumps(
                {
                    "step": progress.step,
                    "tokens": progress.tokens,
                    "losses": progress.losses,
                    "batch_size": plan.global_batch,
                }
            )
        )
    barrier(runtime)
    if runtime.is_main:
        final = scratch / name
        shutil.rmtree(final, ignore_errors=True)
        temporary.rename(final)
        pointer = scratch / f".{LATEST}.tmp"
        pointer.write_text(name + "\n")
        pointer.replace(scratch / LATEST)
        for older in scratch.glob("step-*"):
            if older.name != name and older.is_dir():
                shutil.rmtree(older, ignore_errors=True)
    barrier(runtime)


def _load_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    runtime: Runtime,
    plan: BatchPlan,
) -> _Progress:
    saved = json.loads((folder / "progress.json").read_text())
    if saved["batch_size"] != plan.global_batch:
        # The data position is the step times the batch: another batch reads other data.
        raise InvalidInput(
            f"the checkpoint {folder.name} was trained with batch_size {saved['batch_size']}, "
            f"not {plan.global_batch}: resume with the same batch_size, or start afresh "
            "with an empty scratch folder"
        )
    state = torch.load(folder / "state.pt", map_location=runtime.device, weights_only=True)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise InvalidInput(
            f"the checkpoint {folder.name} in the scratch folder does not fit this "
            f"configuration's model ({str(exc).splitlines()[0]}); train with the "
            "configuration that wrote it, or start afresh with an empty scratch folder"
        ) from None
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    rng_file = folder / f"rng-{runtime.rank}.pt"
    if rng_file.is_file():
        _restore_rng_states(torch.load(rng_file, weights_only=True))
    else:
        # Resumed with more processes than wrote the checkpoint: a fresh, distinct stream.
        _seed_everything(hash((saved["step"], runtime.rank)) % 2**31)
    return _Progress(step=saved["step"], tokens=saved["tokens"], losses=saved["losses"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_states() -> dict[str, Any]:
    """Python's, NumPy's and torch's generators, in types `torch.load(weights_only=True)`
    reads back (NumPy's key array travels as a tensor)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
