"""Every domain's tables, imported in one place so Alembic and tests see the whole schema."""

from commonlab.allocation import models as allocation_models
from commonlab.artifacts import models as artifacts_models
from commonlab.compute import models as compute_models
from commonlab.datasearch import models as datasearch_models
from commonlab.db import Base
from commonlab.governance import models as governance_models
from commonlab.identity import device_models as identity_device_models
from commonlab.identity import federation_models as identity_federation_models
from commonlab.identity import models as identity_models
from commonlab.portal import models as portal_models
from commonlab.record import models as record_models
from commonlab.regulation import models as regulation_models
from commonlab.simulator import models as simulator_models
from commonlab.workloads import models as workloads_models

__all__ = [
    "Base",
    "allocation_models",
    "artifacts_models",
    "compute_models",
    "datasearch_models",
    "governance_models",
    "identity_device_models",
    "identity_federation_models",
    "identity_models",
    "portal_models",
    "record_models",
    "regulation_models",
    "simulator_models",
    "workloads_models",
]
