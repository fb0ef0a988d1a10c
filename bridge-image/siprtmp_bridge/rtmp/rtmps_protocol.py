"""The words the bridge and its RTMPS relay process exchange over each destination's socket
(rtmp/rtmps_relay.py describes the exchange).

A module of its own so that the bridge, which imports it at start for every call, does not
also import the relay's asyncio and ssl for calls that never start one.
"""

CONNECT = "connect"
#: Between the addresses a ``connect`` names.
ADDRESS_SEPARATOR = ","
READY = "ready"
ERROR = "error"
LISTENING = "listening"
#: How long a connection may take, once its destination ends, to hand the server what is still
#: buffered.
CLOSE_TIMEOUT_SECONDS = 2.0
#: How long a destination may take to end after its socket's end: its connections get
#: CLOSE_TIMEOUT_SECONDS to end by themselves, and those then ended as long again to close.
DESTINATION_END_SECONDS = 2 * CLOSE_TIMEOUT_SECONDS
#: A destination's socket is handed to the relay alone, one message each.
DESCRIPTORS_PER_MESSAGE = 1
