"""The runtime's entry point: a configuration mistake and running out of memory each end the
process with one line that says what to do, and a distinct exit status."""

from __future__ import annotations

import json

import pytest

from commonlab.workloads.runtime import __main__ as entry


def args(tmp_path, config):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return ["train", "--config", str(path), "--data", str(tmp_path), "--out",
            str(tmp_path / "out"), "--scratch", str(tmp_path / "s"), "--metrics",
            str(tmp_path / "m.jsonl")]  # fmt: skip


def test_a_dataset_without_records_is_one_line_and_status_2(tmp_path, capsys):
    assert entry.main(args(tmp_path, {"max_steps": 1})) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_out_of_memory_is_named_with_what_to_lower(tmp_path, capsys, monkeypatch):
    import torch

    def exhausted(*_):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(entry, "_run", exhausted)
    assert entry.main(args(tmp_path, {})) == entry.OUT_OF_MEMORY
    err = capsys.readouterr().err
    assert "out of the GPU's memory: lower micro_batch_size or sequence_length" in err


def test_the_cpu_allocators_refusal_is_out_of_memory_too(tmp_path, capsys, monkeypatch):
    import torch

    def exhausted(*_):
        # A real refusal: 32 TiB is more than any machine here could give, so the allocator
        # refuses at once (nothing is touched, the OOM killer is not involved).
        return torch.empty(2**43, dtype=torch.float32)

    monkeypatch.setattr(entry, "_run", exhausted)
    assert entry.main(args(tmp_path, {})) == entry.OUT_OF_MEMORY
    assert "out of memory: lower micro_batch_size" in capsys.readouterr().err


def test_other_errors_are_not_mistaken_for_memory(tmp_path, monkeypatch):
    def broken(*_):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(entry, "_run", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        entry.main(args(tmp_path, {}))
