"""The bridge pod's interface: where the operator mounts what the bridge reads, and the
environment it sets. The operator builds the pod from these names and the bridge's image and
CLI default to them, so the two cannot point at different files.
"""

from __future__ import annotations

#: The spec the operator writes into a Secret of its own, mounted read-only.
SPEC_DIR = "/etc/siprtmp/spec"
SPEC_KEY = "spec.json"
SPEC_FILE = f"{SPEC_DIR}/{SPEC_KEY}"
#: The user's SIP password Secret (``connection.sipPasswordSecretRef``).
SECRET_DIR = "/etc/siprtmp/secret"
PASSWORD_FILE = f"{SECRET_DIR}/password"
#: The user's stream key Secret (``rtmpStreamSecretRef``).
STREAM_DIR = "/etc/siprtmp/stream"
STREAM_FILE = f"{STREAM_DIR}/key"
#: Where the Secrets ``destinations[].rtmpStreamSecretRef`` name are mounted, each whole in a
#: directory of its name: a reference ``{name, key}`` is the file ``STREAM_KEYS_DIR/name/key``.
#: Whole, so a destination added to a live call may use another key of a Secret already there.
STREAM_KEYS_DIR = "/etc/siprtmp/keys"
#: The label (and its value) a Secret must carry for a resource to name it in
#: ``connection.sipPasswordSecretRef``, ``rtmpStreamSecretRef`` or a destination's
#: ``rtmpStreamSecretRef``: the Secrets a bridge may use are opt-in, or an author who may not read
#: Secrets could have any Secret of the namespace sent as a password or published as a key. The
#: operator checks it (metadata only) before each pod; the REST API labels the Secrets it stores.
BRIDGE_USABLE_LABEL = "siprtmp.io/bridge-usable"
BRIDGE_USABLE_VALUE = "true"
#: The slate's image ConfigMap (``video.slate.imageConfigMapRef``).
SLATE_DIR = "/etc/siprtmp/slate"
SLATE_IMAGE_FILE = f"{SLATE_DIR}/image"
#: The CA bundle TLS servers (RTMPS, SIP over TLS) are checked against, when one is configured.
CA_BUNDLE_DIR = "/etc/siprtmp/ca"
CA_BUNDLE_NAME = "ca.crt"
CA_BUNDLE_FILE = f"{CA_BUNDLE_DIR}/{CA_BUNDLE_NAME}"
#: Where the bridge writes its final status; Kubernetes shows it as the termination message.
TERMINATION_LOG = "/dev/termination-log"

#: Where the bridge finds the bearer token a POST /dtmf must carry. The operator sets a new one
#: in each bridge pod (its REST API reads it back from the pod to forward DTMF): anything else
#: that reaches the pod's status port can read /status, but not press keys in the call.
CONTROL_TOKEN_ENV = "SIPRTMP_CONTROL_TOKEN"
