"""URL helpers both programs need: the host a SIP URI names, an RTMP URL's port, and whether
a call checks a TLS server's certificate (the operator mounts a CA bundle for exactly those)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def sip_uri_host(uri: str) -> str:
    """The host a SIP URI names, lower-cased: ``sip:1000@PBX.example.com:5060;transport=tcp``
    → ``pbx.example.com``; an IPv6 reference keeps its brackets."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    host_port = rest.split(";", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    if host_port.startswith("["):
        return host_port.split("]", 1)[0].lower() + "]"
    return host_port.split(":", 1)[0].lower()


def verifies_rtmps(url: str, tls_verify: bool) -> bool:
    """Whether publishing to ``url`` checks the server's certificate (through the bridge's
    RTMPS relay); the operator mounts a CA bundle for exactly these calls."""
    return urlsplit(url.strip()).scheme.lower() == "rtmps" and tls_verify


def verifies_sip_tls(transport: str, tls_verify: bool) -> bool:
    """Whether the SIP connection checks a TLS server's certificate; the operator mounts the
    same CA bundle for these calls (the bridge reads it through ``SSL_CERT_FILE``)."""
    return transport.strip().lower() == "tls" and tls_verify


def rtmp_port(parts: SplitResult) -> int:
    """An rtmp(s):// URL's port, or its scheme's default (RTMP 1935, RTMPS 443)."""
    return parts.port or (443 if parts.scheme.lower() == "rtmps" else 1935)
