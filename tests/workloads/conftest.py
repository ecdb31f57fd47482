"""Workload tests that drive a served facility from the CLI use the journeys' demo facility."""

from tests.cli.conftest import cli_config, served  # noqa: F401  (fixtures)
from tests.journeys.conftest import demo  # noqa: F401  (fixture)
