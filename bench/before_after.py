"""Run one benchmark against an older commit and against the working tree, in turns, and
print each figure side by side: did a change cost speed?

    .venv/bin/python bench/before_after.py --base 37ce8e7 --rounds 3 -- \\
        bench/compute_bench.py admission --seconds 5

The older commit is checked out once into a git worktree under /tmp; both sides run the same
interpreter, each with its own `src/` first on the path and its own copy of the bench script.
Rounds alternate (before, after, before, ...) so a machine that gets busier midway weighs on
both. Every number in the bench's output is matched by its line's text and shown as the
median of the rounds, before and after, with the ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def worktree(base: str) -> Path:
    """A checkout of `base` beside the repository, made once and reused."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = Path("/tmp") / f"commonlab-bench-{commit}"
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), commit],
            check=True,
            capture_output=True,
        )
    return path


def run(tree: Path, command: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    done = subprocess.run(
        [sys.executable, *command], cwd=tree, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{command} failed in {tree}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def figures(output: str) -> dict[str, list[float]]:
    """Each output line's text (numbers blanked) → the numbers on it."""
    found: dict[str, list[float]] = {}
    for line in output.splitlines():
        numbers = [float(n.replace(",", "")) for n in NUMBER.findall(line)]
        if numbers:
            found[NUMBER.sub("#", line).rstrip()] = numbers
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- bench/x.py args...")
    args = parser.parse_args(argv)
    command = [c for c in args.command if c != "--"]
    if not command:
        parser.error("give the bench command after --")
    before_tree = worktree(args.base)
    runs: dict[str, list[dict[str, list[float]]]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        for side, tree in (("before", before_tree), ("after", REPO)):
            print(f"round {round_ + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
            runs[side].append(figures(run(tree, command)))
    print(f"{' '.join(command)}: median of {args.rounds} rounds, {args.base} → working tree")
    for line, numbers in runs["after"][0].items():
        if not all(line in r for r in runs["before"] + runs["after"]):
            continue
        cells = []
        for i in range(len(numbers)):
            try:
                old = statistics.median(r[line][i] for r in runs["before"])
                new = statistics.median(r[line][i] for r in runs["after"])
            except IndexError:
                continue
            ratio = f" ({new / old:.2f}x)" if old else ""
            cells.append(f"{old:g} → {new:g}{ratio}")
        print(f"  {line.strip()}\n      " + " | ".join(cells))


if __name__ == "__main__":
    main()
