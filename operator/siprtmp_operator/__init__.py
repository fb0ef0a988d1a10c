"""Kubernetes operator for SipRtmpBridge resources: one bridge pod per SIP call.

The package keeps pure builders and decisions (``pod``, ``status``, ``statusmodel``, ``policy``,
``networking``, ``reconcile``) apart from the kopf handlers (``handlers``) so that everything that
decides *what* to write can be unit-tested without a cluster.
"""

GROUP = "siprtmp.io"
VERSION = "v1alpha1"
PLURAL = "siprtmpbridges"
KIND = "SipRtmpBridge"
API_VERSION = f"{GROUP}/{VERSION}"

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "VERSION"]
