"""The seed's REST API (startup, terminate, find, find_all, send_dtmf) and a web console.

Each call is a ``SipRtmpBridge``: the API only translates the seed's bodies into resources (and
a Secret for the password) and resources back into the seed's call objects, so ``kubectl``,
GitOps and the API see and drive the same calls. Pure parts: ``bodies`` (request bodies →
validated requests), ``manifests`` (requests → manifests, resources → call views), ``auth``
(token, CORS), ``openapi``; Kubernetes access: ``store``; the use cases: ``calls``; HTTP:
``app``; the console's static files: ``console/``.
"""
