"""A one-stream RTMP receiver for the demo: FFmpeg's RTMP server mode, decoding what arrives.

It runs as a child process (``python -m siprtmp_bridge.demo.receiver URL``) because PyAV
serialises container opening within a process, and a listening open would hold up the bridge's
own RTMP connect. It prints its measurement as one JSON line. No nginx is needed to see the demo
work; the tests use nginx-rtmp as the real server.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from siprtmp_bridge.demo.analysis import decode_audio, measure_tone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=30.0)
    arguments = parser.parse_args()
    try:
        audio = decode_audio(arguments.url, options={"listen": "1"}, timeout=arguments.timeout)
    except Exception as error:
        print(json.dumps({"error": str(error)}), flush=True)
        return 1
    print(json.dumps(dataclasses.asdict(measure_tone(audio))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
