"""RTP on the bridge's own sockets: port claims, NAT keep-alive, the far end's source."""
