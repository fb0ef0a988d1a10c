"""A real RTMP server for the tests: nginx with libnginx-mod-rtmp, recording every stream."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.certificates import self_signed

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")

CONFIG = """load_module {module};
{tls_module}
daemon off;
master_process off;
error_log {root}/error.log info;
pid {root}/nginx.pid;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen {host}:{port};
        application live {{
            live on;
            record all;
            record_path {root}/recordings;
            record_unique on;
            {directives}
        }}
    }}
}}
{tls_server}
"""

# RTMPS: TLS terminated by nginx's stream module in front of the RTMP server, as CDNs do.
TLS_SERVER = """stream {{
    server {{
        listen {host}:{tls_port} ssl;
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        proxy_pass {host}:{port};
    }}
}}"""


class NginxRtmp:
    def __init__(
        self,
        root: Path,
        port: int,
        tls_port: int | None = None,
        host: str = "127.0.0.1",
        on_publish: str | None = None,
        certificate: tuple[Path, Path] | None = None,
        wrapper: tuple[str, ...] = (),
        drop_idle_publisher: int | None = None,
    ) -> None:
        """``on_publish``: a URL nginx-rtmp notifies of each publisher (support/publish_log.py).
        ``drop_idle_publisher``: seconds after which a publisher that sends nothing is dropped (as
        ingest servers do); by default nginx-rtmp keeps a vanished publisher's stream name taken
        until its socket times out, refusing a new publisher of that name meanwhile.
        ``certificate``: (cert, key) the TLS port presents; a new self-signed one by default.
        ``wrapper``: a command nginx is run under, such as ``ip netns exec NS``."""
        self.wrapper = wrapper
        self.root = root
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.recordings = root / "recordings"
        self.recordings.mkdir(parents=True, exist_ok=True)
        tls_module = tls_server = ""
        #: The certificate the TLS port presents (a self-signed one is trusted by nobody).
        self.certificate: Path | None = None
        if tls_port is not None:
            self.certificate, key = certificate or self_signed(root, host)
            tls_module = f"load_module {STREAM_MODULE};"
            tls_server = TLS_SERVER.format(
                tls_port=tls_port, certificate=self.certificate, key=key, port=port, host=host
            )
        directives = [f"on_publish {on_publish};"] if on_publish else []
        if drop_idle_publisher:
            directives.append(f"drop_idle_publisher {drop_idle_publisher}s;")
        (root / "nginx.conf").write_text(
            CONFIG.format(
                module=RTMP_MODULE,
                root=root,
                host=host,
                port=port,
                tls_module=tls_module,
                tls_server=tls_server,
                directives=" ".join(directives),
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtmp://{self.host}:{self.port}/live"

    @property
    def tls_url(self) -> str:
        return f"rtmps://{self.host}:{self.tls_port}/live"

    @property
    def trusting_env(self) -> dict[str, str]:
        """The environment of a bridge whose trust store is this server's certificate."""
        assert self.certificate is not None, "no TLS port"
        return {"SSL_CERT_FILE": str(self.certificate)}

    def start(self) -> NginxRtmp:
        assert shutil.which("nginx"), "nginx is not installed (scripts/test.sh installs it)"
        self.process = subprocess.Popen(
            [*self.wrapper, "nginx", "-c", str(self.root / "nginx.conf"), "-p", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self._listening():
                return self
            time.sleep(0.05)
        raise RuntimeError(
            f"nginx-rtmp did not listen on {self.port}: "
            f"{(self.root / 'error.log').read_text()[-2000:]}"
        )

    def _listening(self) -> bool:
        """nginx listens on its port, as its own network namespace sees it (the test's may be
        another: a ``wrapper`` entering one)."""
        assert self.process is not None
        try:
            table = Path(f"/proc/{self.process.pid}/net/tcp").read_text().splitlines()[1:]
        except OSError:
            return False
        # local_address is ADDR:PORT in hex; state 0A is LISTEN.
        return any(
            int(row.split()[1].split(":")[1], 16) == self.port and row.split()[3] == "0A"
            for row in table
        )

    def stop(self) -> None:
        """Stop abruptly (SIGKILL), as a crashed or restarted server would drop publishers."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def published(self) -> list[str]:
        """The stream names publishers were let in with, in order (nginx-rtmp's info log)."""
        return re.findall(r"publish: name='([^']*)'", (self.root / "error.log").read_text())

    def recordings_of(self, stream: str) -> list[Path]:
        """Recordings of one stream, oldest first (record_unique adds a timestamp suffix)."""
        return sorted(self.recordings.glob(f"{stream}-*.flv"), key=lambda p: p.stat().st_mtime)
