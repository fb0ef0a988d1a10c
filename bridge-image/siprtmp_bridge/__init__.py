"""The bridge: one SIP call published live as one RTMP stream (one process, one pod)."""
