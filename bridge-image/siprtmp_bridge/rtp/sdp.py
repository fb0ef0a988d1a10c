"""SDP as RTP sessions are described in it: the media sections and their SDES keys (shared by
the audio's SRTP check and the video negotiation)."""

from __future__ import annotations


def media_sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    """Session lines and the lines of each media section (each starting with its m= line)."""
    session: list[str] = []
    sections: list[list[str]] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def crypto_values(lines: list[str]) -> tuple[str, ...]:
    """The values of a media section's ``a=crypto`` lines (SDES keys), in their order."""
    return tuple(line[len("a=crypto:") :] for line in lines if line.startswith("a=crypto:"))
