"""`python -m commonlab.workloads.runtime <kind> --config C.json --data D [--model M] --out O
--scratch S --metrics F`: one process of a workload (torchrun starts several of these).

Each kind's module is imported only when asked for: evaluating needs no training code, and
indexing or excluding records needs no torch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from commonlab.errors import InvalidInput, from_validation
from commonlab.extras import extra_for
from commonlab.workloads.config import ConfigOf, Kind
from commonlab.workloads.runtime.paths import Paths

__all__ = ["OUT_OF_MEMORY", "main"]

# The exit status of a workload that ran out of memory (`workload run` names it).
OUT_OF_MEMORY = 3


def _run(kind: Kind, config_data: dict, paths: Paths) -> dict:
    try:
        config = ConfigOf[kind].model_validate(config_data)
    except ValidationError as exc:
        raise from_validation(exc, where="the configuration", document="config.json") from None
    if kind is Kind.INDEX:
        from commonlab.workloads.runtime.index import build

        return build(config, paths)
    if kind is Kind.EXCLUDE:
        from commonlab.workloads.runtime.exclude import exclude

        return exclude(config, paths)
    if kind is Kind.EVALUATE:
        from commonlab.workloads.runtime.evaluate import evaluate

        return evaluate(config, paths)
    if kind is Kind.FINETUNE:
        from commonlab.workloads.runtime.finetune import finetune

        return finetune(config, paths)
    if config.task == "asr":
        from commonlab.workloads.runtime.asr import train_asr

        return train_asr(config, paths)
    from commonlab.workloads.runtime.lm import train_causal_lm

    return train_causal_lm(config, paths)


def _out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (a GPU's; a RuntimeError), the CPU allocator's refusal (a plain
    RuntimeError that says so), or Python's own MemoryError."""
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "DefaultCPUAllocator: can't allocate memory" in str(exc)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m commonlab.workloads.runtime")
    parser.add_argument("kind", choices=[k.value for k in Kind])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = Paths(args.data, args.model, args.out, args.scratch, args.metrics)
    try:
        _run(Kind(args.kind), json.loads(args.config.read_text()), paths)
    except InvalidInput as exc:
        # The job's log says what to fix, on one line, without a traceback.
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except ImportError as exc:
        # A package of an extra this Python lacks (the facility's install decides which).
        extra = extra_for(exc.name or "")
        install = f"pip install 'commonlab[{extra}]'" if extra else f"install {exc.name}"
        print(
            f"error: this {args.kind} workload needs {exc.name}, which the facility's Python "
            f"lacks: its operator should {install}",
            file=sys.stderr,
        )
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        where = "the GPU's memory" if "CUDA" in str(exc) else "memory"
        print(
            f"error: out of {where}: lower micro_batch_size or sequence_length, or ask for "
            f"more memory (--memory-gb) or accelerators ({type(exc).__name__})",
            file=sys.stderr,
        )
        return OUT_OF_MEMORY
    return 0


if __name__ == "__main__":
    sys.exit(main())
