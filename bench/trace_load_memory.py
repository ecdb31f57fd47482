"""Peak memory of loading a large trace whose last line is bad: writes a commonlab CSV of about
`--bytes` (default 1 GB) once, loads it and prints the refusal and the time. Run it under
`/usr/bin/time -v` and read "Maximum resident set size". `--module` loads another copy of
traces.py (an older commit's, to compare):

    git show 645b73b:src/commonlab/simulator/traces.py > /tmp/traces_before.py
    /usr/bin/time -v python bench/trace_load_memory.py /tmp/big.csv --module /tmp/traces_before.py
    /usr/bin/time -v python bench/trace_load_memory.py /tmp/big.csv
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

HEADER = "job_id,tenant,submit,runtime,accelerators,class,one_domain,wait\n"
BATCH = 100_000


def write_trace(path: Path, size: int) -> int:
    """About `size` bytes of valid jobs, then one line whose submit is not a number."""
    jobs = 0
    with path.open("w") as out:
        out.write(HEADER)
        written = len(HEADER)
        while written < size:
            text = "".join(
                f"{j},physics-group-{j % 50:02d},{j * 2.5:.1f},{3600 + j % 7200}.5,"
                f"{1 << (j % 4)},H100|A100,{j % 2},{j % 900}.25\n"
                for j in range(jobs, jobs + BATCH)
            )
            out.write(text)
            written += len(text)
            jobs += BATCH
        out.write(f"{jobs},physics-group-00,yesterday,3600,1,H100,0,0\n")
    return jobs + 1


def traces_module(path: Path | None) -> ModuleType:
    if path is None:
        from commonlab.simulator import traces

        return traces
    spec = importlib.util.spec_from_file_location("traces_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path)
    parser.add_argument("--bytes", type=float, default=1e9)
    parser.add_argument("--module", type=Path, help="a traces.py to load instead")
    args = parser.parse_args()
    if not args.trace.exists():
        print(f"wrote {write_trace(args.trace, int(args.bytes)):,} jobs to {args.trace}")
    traces = traces_module(args.module)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        traces.load_trace(args.trace)
        print("loaded (the last line should have been refused)")
    except Exception as exc:  # the old loader's errors included tracebacks
        print(f"{type(exc).__name__}: {str(exc)[:200]}")
    print(f"{time.perf_counter() - start:.1f} s, {time.process_time() - cpu:.2f} s of CPU")


if __name__ == "__main__":
    main()
