"""The words the bridge and its RTMPS relay process exchange over the relay's stdin and stdout
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
#: How long the relay may take, after end of stdin, to hand the server what is still buffered.
CLOSE_TIMEOUT_SECONDS = 2.0
