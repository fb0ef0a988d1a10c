"""``sip-rtmp-bridge``: ``run`` places one call from a spec file; ``demo`` shows it end to end."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from siprtmp_bridge.logs import DEFAULT_LEVEL, LEVELS, logging_to_stderr
from siprtmp_contract.outcome import ExitCode
from siprtmp_contract.pod import TERMINATION_LOG
from siprtmp_contract.redact import Scrubber

log = logging.getLogger(__name__)

DEFAULT_TERMINATION_LOG = Path(TERMINATION_LOG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sip-rtmp-bridge", description="Bridge one SIP call to a live RTMP stream."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="place one call and publish its audio")
    run.add_argument("--spec", type=Path, required=True, help="JSON or YAML spec file")
    run.add_argument("--sip-password-file", type=Path, help="file holding the SIP password")
    run.add_argument(
        "--rtmp-stream-file", type=Path, help="file holding the stream key (rtmpStreamSecretRef)"
    )
    run.add_argument(
        "--stream-keys-dir",
        type=Path,
        help="where the Secrets of destinations[].rtmpStreamSecretRef are (NAME/KEY files)",
    )
    run.add_argument(
        "--slate-image-file",
        type=Path,
        help="the slate's picture, PNG or JPEG (video.slate.imageConfigMapRef)",
    )
    run.add_argument("--status-host", default="0.0.0.0", help="address of the status server")
    run.add_argument(
        "--status-port", type=int, default=8080, help="port of /status, /metrics; 0 disables"
    )
    run.add_argument(
        "--termination-log",
        type=Path,
        default=DEFAULT_TERMINATION_LOG if DEFAULT_TERMINATION_LOG.exists() else None,
        help="where the final status is written (Kubernetes termination message)",
    )
    run.add_argument("--sip-log-level", type=int, default=1, help="pjsua log level on stderr")
    run.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        default=DEFAULT_LEVEL,
        help="the bridge's own log on stderr, from this level on",
    )
    demo = commands.add_parser("demo", help="call a built-in tone peer and prove the tone arrived")
    demo.add_argument("--seconds", type=float, default=4.0, help="length of the demo call")
    demo.add_argument("--frequency", type=float, default=440.0, help="the demo tone in Hz")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.command == "demo":
        from siprtmp_bridge.demo.run import run_demo

        return run_demo(arguments.seconds, arguments.frequency)
    return run_command(arguments)


def run_command(arguments: argparse.Namespace) -> int:
    # Imported here so that `--help` and spec errors answer without loading pjsua and FFmpeg.
    from siprtmp_contract.spec import (
        SpecError,
        load_spec_file,
    )

    try:
        spec = load_spec_file(
            arguments.spec,
            arguments.sip_password_file,
            arguments.rtmp_stream_file,
            arguments.slate_image_file,
            arguments.stream_keys_dir,
        )
    except SpecError as error:
        with logging_to_stderr(Scrubber(), arguments.log_level):  # no spec: no secrets known
            log.error("invalid spec: %s", error)
        return int(ExitCode.INVALID_SPEC)
    from siprtmp_bridge.service import serve_one_call

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return serve_one_call(
        spec,
        stop,
        status_address=(arguments.status_host, arguments.status_port),
        termination_log=arguments.termination_log,
        sip_log_level=arguments.sip_log_level,
        log_level=arguments.log_level,
    )


if __name__ == "__main__":
    sys.exit(main())
