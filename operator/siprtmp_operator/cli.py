"""``sip-rtmp-operator``: run the operator (all namespaces, or those it is told to watch)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from siprtmp_contract.redact import ScrubbingFormatter

from .handlers import operate
from .redaction import mask_secret_fields
from .settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sip-rtmp-operator",
        description="Run the SipRtmpBridge operator. Configuration: SIPRTMP_* environment "
        "variables (see docs/operator.md).",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch (repeatable; default: SIPRTMP_WATCH_NAMESPACES, else all)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(ScrubbingFormatter(mask_secret_fields, LOG_FORMAT))
    for noisy in ("kubernetes.client.rest", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not args.verbose:
        # kopf logs every handler success at INFO: one line per bridge per poll interval.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"sip-rtmp-operator: {exc}", file=sys.stderr)
        return 2
    namespaces = list(args.namespace) or list(settings.watch_namespaces)
    asyncio.run(operate(settings, namespaces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
