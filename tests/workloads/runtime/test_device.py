"""runtime/device.py: `auto` picks what the machine has; a device or precision it cannot
honour is refused with what to ask for instead."""

from __future__ import annotations

import pytest
import torch

from commonlab.errors import InvalidInput
from commonlab.workloads.runtime.device import choose_device, choose_precision, start

CPU = torch.device("cpu")


def test_auto_on_a_cpu_only_machine_is_the_cpu_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    runtime = start("auto", "auto")
    assert (runtime.device, runtime.precision_name, runtime.dtype) == (CPU, "fp32", torch.float32)
    assert runtime.is_main and not runtime.distributed


def test_what_the_machine_cannot_do_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInput, match="no usable GPU"):
        choose_device("cuda")
    with pytest.raises(InvalidInput, match="fp16' needs a GPU"):
        choose_precision("fp16", CPU)
    assert choose_precision("bf16", CPU) == ("bf16", torch.bfloat16)
