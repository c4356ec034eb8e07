"""The model registry: versioned models, routes and an audit trail (the control plane)."""

from registry.errors import (
    ArtifactCorrupt,
    InvalidName,
    InvalidReference,
    InvalidRoute,
    ModelNotFound,
    PickleRefused,
    RegistryError,
    RouteConflict,
    UnsupportedArtifact,
    UntrustedTypes,
    VersionNotFound,
)
from registry.model import (
    Canary,
    Event,
    Feature,
    InputSchema,
    Lineage,
    ModelVersion,
    OutputSchema,
    Route,
    Shadow,
)
from registry.registry import Registry

__all__ = [
    "ArtifactCorrupt",
    "Canary",
    "Event",
    "Feature",
    "InputSchema",
    "InvalidName",
    "InvalidReference",
    "InvalidRoute",
    "Lineage",
    "ModelNotFound",
    "ModelVersion",
    "OutputSchema",
    "PickleRefused",
    "Registry",
    "RegistryError",
    "Route",
    "RouteConflict",
    "Shadow",
    "UnsupportedArtifact",
    "UntrustedTypes",
    "VersionNotFound",
]

# rollout actions and gateway liveness (issue 5)
from registry.gateways import GatewayState, failed_versions, gateway_states, report_gateway
from registry.lease import Lease, LeaseRecord  # single-instance roles (issue 17)
from registry.rollout import (
    advance_rollout,
    clear_shadow,
    promote,
    rollback,
    set_shadow,
    set_weight,
    start_rollout,
)

__all__ += [
    "GatewayState",
    "Lease",
    "LeaseRecord",
    "advance_rollout",
    "clear_shadow",
    "failed_versions",
    "gateway_states",
    "promote",
    "report_gateway",
    "rollback",
    "set_shadow",
    "set_weight",
    "start_rollout",
]
