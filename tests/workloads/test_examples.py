"""Every example configuration in examples/workloads/ is one the facility admits: it reads as
its kind's configuration, and the model it sizes is one transformers can build."""

from __future__ import annotations

from pathlib import Path

import pytest

from commonlab.schemas import read_document
from commonlab.workloads.config import ConfigOf, Kind, TrainConfig

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "workloads").glob("*.toml"))


def test_there_is_an_example_of_every_kind():
    assert {path.name.split("-")[0] for path in EXAMPLES} == {kind.value for kind in Kind}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_reads_as_its_kind(path):
    config = read_document(path, ConfigOf[Kind(path.name.split("-")[0])], what="example")
    if isinstance(config, TrainConfig):
        size = config.model.size
        if config.task == "asr":
            from commonlab.workloads.runtime.asr import model_config

            model_config(size)
        else:
            from commonlab.workloads.runtime.lm import allowed_size_keys

            assert set(size) <= set(allowed_size_keys(config.model.architecture))
