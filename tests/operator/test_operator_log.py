"""The operator's own log never shows a stream key, however the resource was written.

kopf prints resources and their changes whole at ``logLevel: debug`` (the level the harness
runs at); a key written with kubectl reaches the operator that way only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from siprtmp_operator import GROUP, PLURAL, VERSION
from tests.operator.k8s_harness import wait_for
from tests.operator.test_operator_k8s import spec

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s


def test_keys_written_with_kubectl_stay_out_of_the_operator_log(cluster: Cluster, ns: str) -> None:
    main_key = "kubectl-main?s_bl=1&s_sc=MAINSIG4410&s_sw=0"
    first_key, added_key = "dest-key-FIRST8812", "dest-key-ADDED3307#frag"
    url_secret = "pushpass6671"
    destination = {"rtmpUrl": f"rtmp://pusher:{url_secret}@cdn.example.test/live2",
                   "rtmpStream": first_key, "name": "first"}  # fmt: skip
    cluster.create_bridge(ns, "keyed", spec(rtmpStream=main_key, destinations=[destination]))
    cluster.wait_pod(ns, "keyed-bridge-0")
    added = {"rtmpUrl": "rtmp://cdn.example.test/live3", "rtmpStream": added_key, "name": "added"}
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "keyed", {"spec": {"destinations": [destination, added]}}
    )
    wait_for(
        "the operator handled the change",
        lambda: (
            "keyed" in cluster.operator.log_text()
            and (cluster.bridge(ns, "keyed") or {}).get("spec", {}).get("destinations", [])[-1:]
            == [added]
        ),
    )
    cluster.delete_bridge(ns, "keyed")
    wait_for("the resource is gone", lambda: cluster.bridge(ns, "keyed") is None, timeout=60)
    log = cluster.operator.log_text()
    for secret in ("MAINSIG4410", "kubectl-main", "FIRST8812", "ADDED3307", url_secret):
        assert secret not in log, (
            secret,
            [line for line in log.splitlines() if secret in line][:3],
        )
