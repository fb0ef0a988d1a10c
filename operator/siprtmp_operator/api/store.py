"""Kubernetes calls of the API (blocking: the use cases run them in threads), with the API
server's refusals turned into the API's own errors."""

from __future__ import annotations

import json
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from .. import GROUP, PLURAL, VERSION
from ..kube import UNANSWERED, Kube
from .errors import ApiError, bad_request

JSON = dict[str, Any]


def refusal(exc: ApiException, what: str) -> ApiError:
    """An API server error as the API's answer: invalid fields stay 400s naming the field."""
    try:
        status = json.loads(exc.body or "{}")
    except ValueError:
        status = {}
    causes = (status.get("details") or {}).get("causes") or []
    if exc.status == 422 and causes:
        cause = causes[0]
        field = str(cause.get("field") or "body").removeprefix("spec.")
        return bad_request(field, str(cause.get("message") or status.get("message")))
    if exc.status in (400, 422):
        return bad_request("body", str(status.get("message") or exc.reason))
    if exc.status == 403:
        # The chart's RBAC is missing a rule: an installation problem, not the caller's.
        return ApiError(500, f"{what}: the operator's service account is not allowed to")
    return ApiError(502, f"{what}: Kubernetes API answered {exc.status} {exc.reason}")


def unanswered(what: str) -> ApiError:
    """A Kubernetes request that timed out (or found no server): the API's 504."""
    return ApiError(504, f"{what}: the Kubernetes API did not answer in time")


class CallStore:
    """SipRtmpBridges and their Secrets in the API's namespace."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    def list_calls(self) -> list[JSON]:
        try:
            found = self.kube.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL
            )
        except ApiException as exc:
            raise refusal(exc, "listing calls") from exc
        except UNANSWERED as exc:
            raise unanswered("listing calls") from exc
        return cast(list[JSON], cast(JSON, found).get("items") or [])

    def create_call(self, manifest: JSON) -> JSON:
        try:
            return cast(
                JSON,
                self.kube.custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, manifest
                ),
            )
        except ApiException as exc:
            if exc.status == 409:
                raise ApiError(409, "callId: a call with this callId exists", "callId") from exc
            raise refusal(exc, "creating the call") from exc
        except UNANSWERED as exc:
            # It may have been created all the same: the caller finds it by its callId.
            raise unanswered("creating the call") from exc

    def create_secret(self, manifest: JSON) -> None:
        try:
            self.kube.core.create_namespaced_secret(
                self.namespace,
                manifest,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            if exc.status == 409:  # the garbage collector has not removed the last one yet
                raise ApiError(
                    409,
                    "callId: the previous call with this callId is still being removed; retry",
                    "callId",
                ) from exc
            raise refusal(exc, "storing the SIP password") from exc
        except UNANSWERED as exc:
            raise unanswered("storing the SIP password") from exc

    def set_destinations(self, name: str, resource_version: str, destinations: list[JSON]) -> bool:
        """Write a call's ``spec.destinations`` if the resource is still at ``resource_version``
        (False when it changed meanwhile: read it again and decide again). The operator tells
        the running bridge."""
        patch = {
            "metadata": {"resourceVersion": resource_version},
            "spec": {"destinations": destinations},
        }
        try:
            self.kube.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, patch
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status == 404:
                raise ApiError(404, "callId: the call is gone", "callId") from exc
            raise refusal(exc, "changing the call's destinations") from exc
        except UNANSWERED as exc:
            raise unanswered("changing the call's destinations") from exc
        return True

    def delete_call(self, name: str) -> None:
        """Delete (the operator's finalizer hangs up first); gone already is fine."""
        try:
            self.kube.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise refusal(exc, "terminating the call") from exc
        except UNANSWERED as exc:
            raise unanswered("terminating the call") from exc

    def get_pod(self, name: str) -> JSON | None:
        try:
            return self.kube.get_pod(self.namespace, name)
        except ApiException as exc:
            raise refusal(exc, "reading the bridge pod") from exc
        except UNANSWERED as exc:
            raise unanswered("reading the bridge pod") from exc
