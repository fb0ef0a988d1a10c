"""Names, labels and annotations shared by the builders, the handlers and the chart.

Deterministic names are what keep an operator restart from creating a second pod for the same
call: attempt N of bridge B is always the pod ``B-bridge-N``.
"""

from __future__ import annotations

import hashlib

from . import GROUP

MANAGED_BY = "sip-rtmp-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_BRIDGE = f"{GROUP}/bridge"
LABEL_BRIDGE_UID = f"{GROUP}/bridge-uid"
LABEL_ATTEMPT = f"{GROUP}/attempt"
ANNOTATION_PORT_SLOT = f"{GROUP}/port-slot"
FINALIZER = f"{GROUP}/bridge-pod"
#: What keeps the autoscalers from moving a live call: Karpenter's and the cluster autoscaler's
#: own annotations (neither consults a PodDisruptionBudget before picking a node to empty).
DO_NOT_DISRUPT = {
    "karpenter.sh/do-not-disrupt": "true",
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
}
#: The taints a node gets when it stops reporting; bridge pods tolerate them only briefly.
NODE_LOST_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
#: On each operator replica's pod: ``active`` on the one holding the Lease (``leader``), which
#: the REST API's Service selects; ``standby`` on the others.
LABEL_OPERATOR_ROLE = f"{GROUP}/operator-role"
ROLE_ACTIVE = "active"
ROLE_STANDBY = "standby"
CONTAINER_NAME = "bridge"
STATUS_PORT_NAME = "status"


def pod_name(bridge_name: str, attempt: int) -> str:
    """Name of the pod running ``attempt`` (0 = first dial) of a bridge."""
    return f"{bridge_name}-bridge-{attempt}"


def disruption_budget_name(bridge_name: str) -> str:
    """Name of a bridge's PodDisruptionBudget (one for all its attempts' pods)."""
    return f"{bridge_name}-bridge"


def spec_secret_name(pod: str, content: str) -> str:
    """The Secret holding a pod's spec, named after its content: the operator may only create
    Secrets, never read their data or replace them, so an existing one (a step interrupted
    between the Secret and the pod) is adopted only when its name says it holds the same spec."""
    return f"{pod}-spec-{hashlib.sha256(content.encode()).hexdigest()[:10]}"


def pod_labels(bridge_name: str, bridge_uid: str, attempt: int) -> dict[str, str]:
    """Labels that select a bridge's pods (the operator watches only these)."""
    return {
        LABEL_NAME: "sip-rtmp-bridge",
        LABEL_COMPONENT: "bridge",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_BRIDGE: bridge_name,
        LABEL_BRIDGE_UID: bridge_uid,
        LABEL_ATTEMPT: str(attempt),
    }
