"""Thin access to the Kubernetes API for the handlers (the kubernetes client, synchronous).

Handlers run in kopf's thread pool, so a synchronous client keeps them simple. Credentials come
from the pod's service account in a cluster, else from KUBECONFIG (tests, local runs).
"""

from __future__ import annotations

import json
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


class PodRefusedError(Exception):
    """The API server refused a pod (an admission check: PodSecurity, a policy, a quota)."""


class BoundedApiClient(kubernetes.client.ApiClient):
    """The client whose every request has a timeout: ``timeout`` seconds unless the call sets
    its own ``_request_timeout``. One API call that hangs then fails in bounded time instead of
    holding a worker (and whatever it locked) for ever."""

    def __init__(self, configuration: kubernetes.client.Configuration, timeout: float) -> None:
        super().__init__(configuration)
        self.timeout = timeout

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None:  # the generated calls pass it by name
            kwargs["_request_timeout"] = self.timeout
        return super().call_api(*args, **kwargs)


#: The Accept header that has the API server send an object's metadata and nothing else.
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

#: What a request that got no answer raises (timed out, refused, reset).
UNANSWERED = (OSError, urllib3.exceptions.HTTPError)


class Kube:
    """The handful of calls the operator makes besides kopf's own watches and patches."""

    def __init__(self, pool_size: int = 32, timeout: float = 10.0) -> None:
        cfg = kubernetes.client.Configuration.get_default_copy()
        cfg.connection_pool_maxsize = pool_size
        # A stalled answer is not retried (a retry would wait the timeout again); a refused or
        # dropped connection (a pooled one the server closed) is, once: a request costs at most
        # twice the timeout.
        cfg.retries = urllib3.util.Retry(total=1, read=0, redirect=0)
        self.api = BoundedApiClient(cfg, timeout)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.policy = kubernetes.client.PolicyV1Api(self.api)

    def api_answers(self) -> bool:
        """Whether the API server answers us, credentials included (its /version, 5 s)."""
        try:
            kubernetes.client.VersionApi(self.api).get_code(_request_timeout=5)
        except (ApiException, *UNANSWERED):
            return False
        return True

    def _plain(self, obj: object) -> dict[str, Any]:
        """A client model as the plain dict the API sent (camelCase keys)."""
        result: dict[str, Any] = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return result

    def create_pod(self, manifest: dict[str, Any]) -> bool:
        """Create; False when it already exists (an earlier run created it: adopt it).
        PodRefusedError, with the API server's message, when an admission check refuses it."""
        try:
            self.core.create_namespaced_pod(
                manifest["metadata"]["namespace"],
                manifest,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status in (403, 422):
                raise PodRefusedError(_message(exc)) from exc
            raise
        return True

    def create_disruption_budget(self, manifest: dict[str, Any]) -> None:
        """Create; one that exists (an earlier attempt's) is kept."""
        try:
            self.policy.create_namespaced_pod_disruption_budget(
                manifest["metadata"]["namespace"],
                manifest,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

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

    def secret_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        """The labels of Secret ``namespace/name``, None when it does not exist. Asks for its
        metadata only (a PartialObjectMetadata): the operator never receives a Secret's data,
        though RBAC's ``get`` cannot say so."""
        try:
            # Not preloaded: the raw answer, which is not the V1Secret the client declares.
            answer: Any = self.core.read_namespaced_secret(
                name, namespace, _headers={"Accept": PARTIAL_METADATA}, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        try:
            meta = json.loads(answer.data)
        finally:
            answer.release_conn()
        if not isinstance(meta, dict) or meta.get("kind") != "PartialObjectMetadata":
            raise ValueError("the API server did not answer with the Secret's metadata only")
        return dict((meta.get("metadata") or {}).get("labels") or {})

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


def _message(exc: ApiException) -> str:
    """The API server's own words for a refusal (its Status document's message)."""
    try:
        status = json.loads(exc.body or "{}")
    except ValueError:
        status = {}
    return str(status.get("message") or exc.reason or exc.status)
