"""Publishing over RTMP and RTMPS: the publisher, the route to the server, the RTMPS relay."""
