"""The model card a workload writes for what it made: nothing written by hand. Its front matter
follows the Hugging Face convention (datasets, base_model, tags, model-index) so the Hub's
tools read it; its body says how the model was made: the data, the configuration and its
hash, the job and the hours, the training figures."""

from __future__ import annotations

import json
from typing import Any

import yaml

__all__ = ["model_card"]


def model_card(
    *,
    repo: str,
    workload: dict[str, Any],
    job: dict[str, Any],
    results: dict[str, Any],
    licenses: list[str],
) -> str:
    """README.md for the version `repo` is about to get, made by workload `workload` in job
    `job` (both as the API gives them), with the runtime's `results`."""
    kind = workload["kind"]
    config = workload["config"]
    hours = _hours(job, results)
    meta: dict[str, Any] = {
        "library_name": "peft" if results.get("method") == "lora" else "transformers",
        "tags": ["commonlab", kind, config.get("task", "causal_lm")],
        "datasets": [workload["dataset"]] if workload.get("dataset") else [],
    }
    if licenses:
        meta["license"] = licenses[0] if len(licenses) == 1 else licenses
    if workload.get("model"):
        meta["base_model"] = workload["model"]
    name = repo.split("/", 1)[-1]
    lines = [
        f"# {name}",
        "",
        f"Made by the `{kind}` workload of job {job['id']} (project {job['project']}) of "
        "this facility. This card was generated from what the job was asked and what it "
        "measured; the facility signed the version and recorded its lineage.",
        "",
        "## Data",
        "",
        f"- dataset: `{workload['dataset']}`" if workload.get("dataset") else "- dataset: none",
    ]
    if workload.get("model"):
        lines.append(f"- base model: `{workload['model']}`")
    if licenses:
        lines.append(f"- licences of the data: {', '.join(licenses)}")
    lines += [
        "",
        "## Training",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in _figures(results, hours)),
        "",
        "## Configuration",
        "",
        f"SHA-256 `{workload['config_sha256']}` (on the public record with the job's admission).",
        "",
        "```json",
        json.dumps(config, indent=2, sort_keys=True),
        "```",
        "",
        "## Evaluation",
        "",
        "Evaluations of this version are published on its page and on the task leaderboards,",
        "each with the Merkle root of its per-sample hashes on the public record.",
        "",
    ]
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()
    return f"---\n{front}\n---\n\n" + "\n".join(lines)


def _hours(job: dict[str, Any], results: dict[str, Any]) -> float:
    """Accelerator-hours the training took: its wall time times the job's accelerators (the
    hours charged, settled when the job ends, include pulling and pushing)."""
    return round(float(results.get("elapsed_seconds", 0)) * int(job["accelerators"]) / 3600, 4)


def _figures(results: dict[str, Any], hours: float) -> list[tuple[str, str]]:
    shown = [
        ("steps", results.get("steps")),
        ("tokens" if results.get("unit", "tokens") == "tokens" else results["unit"],
         results.get("tokens")),
        ("final loss", _round(results.get("final_loss"))),
        ("parameters", results.get("parameters")),
        ("trainable parameters", results.get("trainable_parameters")),
        ("method", results.get("method")),
        ("processes", results.get("processes")),
        ("device", results.get("device")),
        ("precision", results.get("precision")),
        ("tokens per second", _round(results.get("tokens_per_second"))),
        ("wall time (s)", _round(results.get("elapsed_seconds"))),
        ("accelerator-hours", hours),
        ("resumed from step", results.get("resumed_from_step") or None),
    ]  # fmt: skip
    return [(label, str(value)) for label, value in shown if value is not None]


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
