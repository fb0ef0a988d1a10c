"""Thin access to the Kubernetes API for the handlers (the kubernetes client, synchronous).

Handlers run in kopf's thread pool, so a synchronous client keeps them simple. Credentials come
from the pod's service account in a cluster, else from KUBECONFIG (tests, local runs).
"""

from __future__ import annotations

from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from . import GROUP, PLURAL, VERSION


def load_config() -> None:
    """In-cluster service account first, kubeconfig otherwise."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]


class Kube:
    """The handful of calls the operator makes besides kopf's own watches and patches."""

    def __init__(self, pool_size: int = 32) -> None:
        cfg = kubernetes.client.Configuration.get_default_copy()
        cfg.connection_pool_maxsize = pool_size
        self.api = kubernetes.client.ApiClient(cfg)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)

    def api_answers(self) -> bool:
        """Whether the API server answers us, credentials included (its /version, 5 s)."""
        try:
            kubernetes.client.VersionApi(self.api).get_code(_request_timeout=5)
        except (ApiException, OSError, urllib3.exceptions.HTTPError):
            return False
        return True

    def _plain(self, obj: object) -> dict[str, Any]:
        """A client model as the plain dict the API sent (camelCase keys)."""
        result: dict[str, Any] = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return result

    def create_pod(self, manifest: dict[str, Any]) -> bool:
        """Create; False when it already exists (an earlier run created it: adopt it)."""
        try:
            self.core.create_namespaced_pod(
                manifest["metadata"]["namespace"],
                manifest,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def create_secret(self, manifest: dict[str, Any]) -> None:
        """Create; one that exists is kept (its name is its content's: names.spec_secret_name)."""
        try:
            self.core.create_namespaced_secret(
                manifest["metadata"]["namespace"],
                manifest,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            pod = self.core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self._plain(pod)

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector)
        return [self._plain(p) for p in pods.items]

    def delete_pod(self, namespace: str, name: str, grace_seconds: int) -> None:
        try:
            self.core.delete_namespaced_pod(
                name,
                namespace,
                grace_period_seconds=grace_seconds,
                propagation_policy="Background",
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def list_nodes(self) -> list[dict[str, Any]]:
        return [self._plain(n) for n in self.core.list_node().items]

    def delete_bridge(self, namespace: str, name: str, uid: str) -> None:
        """Delete the resource, but only the incarnation we looked at (UID precondition)."""
        body = kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(uid=uid),
            propagation_policy="Background",
        )
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body=body
            )
        except ApiException as exc:
            if exc.status not in {404, 409}:
                raise
