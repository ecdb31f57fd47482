"""`python -m commonlab.workloads.runtime <kind> --config C.json --data D [--model M] --out O
--scratch S --metrics F`: one process of a workload (torchrun starts several of these).

Each kind's module is imported only when asked for: evaluating needs no training code."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from commonlab.errors import InvalidInput
from commonlab.workloads.config import ConfigOf, Kind
from commonlab.workloads.runtime.paths import Paths

__all__ = ["main"]


def _run(kind: Kind, config_data: dict, paths: Paths) -> dict:
    config = ConfigOf[kind].model_validate(config_data)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
