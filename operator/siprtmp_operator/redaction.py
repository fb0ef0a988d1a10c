"""What the operator's own log masks: the stream keys the REST API was sent for pushes.

A push's key is written into the resource, and kopf's debug log (``logLevel: debug``) prints
resources whole; the API widens this Scrubber with a key before it writes it, and ``cli``
formats every line of the operator's log through it. Keys stay in it for the process's life
(older versions of a resource may still be logged after a destination is removed).
"""

from __future__ import annotations

from siprtmp_contract.redact import Scrubber

LOG_SCRUBBER = Scrubber()
