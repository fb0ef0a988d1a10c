"""The built-in demo: a tone-playing SIP peer, a local RTMP receiver, one bridged call."""
