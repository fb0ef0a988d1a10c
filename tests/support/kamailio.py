"""Kamailio as a real registrar and digest-auth proxy in front of a SIPp far end, or as an SBC
anchoring the media in rtpengine (tests/support/rtpengine.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from tests.support.certificates import self_signed
from tests.support.processes import end_process_group

MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")

CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
listen=udp:{host}:{port}
listen=tcp:{host}:{port}
alias="localhost"
{tls_listen}
mpath="{modules}/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
{tls_module}
modparam("usrloc", "db_mode", 0)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        {tls_log}
        if (loose_route() || is_method("ACK|BYE")) {{ t_relay(); }}
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    {tls_log}
    if (is_present_hf("Authorization") || is_present_hf("Proxy-Authorization")) {{
        xlog("L_NOTICE", "CREDENTIALS of $au for realm $ar\n");
    }}
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("{realm_of_to}", "{password}", "0")) {{
            www_challenge("{realm_of_to}", "0");
            exit;
        }}
        if ($au != "{user}") {{ sl_send_reply("403", "Forbidden"); exit; }}
        xlog("L_NOTICE", "REGISTERED $au $ct\\n");
        save("location");
        exit;
    }}
    if (is_method("INVITE")) {{
        if (!pv_proxy_authenticate("{realm_of_from}", "{password}", "0")) {{
            proxy_challenge("{realm_of_from}", "0");
            exit;
        }}
        if ($au != "{user}") {{ sl_send_reply("403", "Forbidden"); exit; }}
        consume_credentials();
        xlog("L_NOTICE", "AUTHORIZED INVITE $au to $ru\\n");
        record_route();
        if (uri == myself) {{ $du = "sip:{host}:{target_port}"; }}
        t_relay();
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"""


# Kamailio 5.6 has no method for TLS 1.3 alone: its "SSLv23" leaves the versions to OpenSSL,
# whose configuration (OPENSSL_CONF, this) then allows 1.3 only.
TLS_1_3_ONLY = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
"""

TLS_CONFIG = """[server:default]
method = {method}
verify_certificate = no
require_certificate = no
private_key = {root}/key.pem
certificate = {root}/cert.pem
"""


SBC_CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=udp:{host}:{port}
mpath="{modules}/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "textopsx.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", "udp:{host}:{ng_port}")

# An INVITE without SDP (a delayed offer): the offer comes in the 200 OK, the answer in the ACK.
#!define DELAYED_OFFER 1

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("OPTIONS") && uri == myself) {{ sl_send_reply("200", "OK"); exit; }}
    if (has_totag() && !loose_route() && !is_method("ACK|BYE")) {{
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("BYE")) {{
        rtpengine_delete();
        xlog("L_NOTICE", "SBC delete $ci\n");
    }} else if (is_method("ACK") && has_body("application/sdp")) {{
        rtpengine_answer("{flags}");
        xlog("L_NOTICE", "SBC answer in ACK $ci\n");
    }} else if (is_method("INVITE|UPDATE")) {{
        if (!has_totag()) {{ record_route(); }}
        if (has_body("application/sdp")) {{
            rtpengine_offer("{flags}");
            xlog("L_NOTICE", "SBC offer in $rm $ci\n");
        }} else {{
            setflag(DELAYED_OFFER);
            xlog("L_NOTICE", "SBC delayed offer $ci\n");
        }}
        t_on_reply("SDP");
    }}
    t_relay();
}}

onreply_route[SDP] {{
    if (has_body("application/sdp")) {{
        if (isflagset(DELAYED_OFFER)) {{
            rtpengine_offer("{flags}");
            xlog("L_NOTICE", "SBC offer in $rs $ci\n");
        }} else {{
            rtpengine_answer("{flags}");
            xlog("L_NOTICE", "SBC answer in $rs $ci\n");
        }}
    }}
}}
"""

# rtpengine rewrites o= and the session's c= too (the SDP then names it alone), drops any ICE.
SBC_FLAGS = "replace-origin replace-session-connection ICE=remove"


class KamailioProcess:
    """One Kamailio running ``config`` (written to ``root``), answering SIP on UDP ``port``."""

    def __init__(
        self, root: Path, host: str, port: int, config: str, env: dict[str, str] | None = None
    ) -> None:
        self.root = root
        self.env = env or {}
        self.host = host
        self.port = port
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "kamailio.cfg"
        self.config.write_text(config)
        self.log = root / "kamailio.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        assert shutil.which("kamailio"), "kamailio is not installed (scripts/test.sh installs it)"
        check = subprocess.run(
            ["kamailio", "-c", "-f", str(self.config)],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
        )
        assert check.returncode == 0, check.stderr[-3000:]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "kamailio",
                    "-f",
                    str(self.config),
                    "-DD",
                    "-E",
                    "-n",
                    "1",
                    "-P",
                    str(self.root / "kamailio.pid"),
                    "-Y",
                    str(self.root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends every child
                env={**os.environ, **self.env},
            )
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_answering(self) -> None:
        """Ready once it answers an OPTIONS (whatever its config answers) over UDP."""
        deadline = time.monotonic() + 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((self.host, 0))
            probe.settimeout(0.2)
            via = f"{self.host}:{probe.getsockname()[1]}"
            options = (
                f"OPTIONS sip:{self.host}:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {via};branch=z9hG4bK-ready\r\n"
                f"From: <sip:probe@{self.host}>;tag=1\r\nTo: <sip:probe@{self.host}>\r\n"
                f"Call-ID: ready@{self.host}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            while time.monotonic() < deadline:
                probe.sendto(options, (self.host, self.port))
                try:
                    if probe.recv(4096).startswith(b"SIP/2.0"):
                        return
                except TimeoutError:
                    continue
        raise RuntimeError(f"kamailio did not answer: {self.text()[-2000:]}")

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """End Kamailio and all its forked workers (the main process alone can leave some)."""
        if self.process is not None:
            end_process_group(self.process)


class KamailioSbc(KamailioProcess):
    """Kamailio as a session border controller: a stateful proxy (record-routed, so every
    in-dialog request passes it) that hands each SDP to rtpengine's ng control on ``ng_port``
    (offer, answer, delete on BYE). Requests go where their URI says (the caller names this
    proxy as its outbound proxy). Nothing asks for credentials."""

    def __init__(self, root: Path, port: int, ng_port: int, host: str = "127.0.0.1") -> None:
        config = SBC_CONFIG.format(
            host=host, port=port, modules=MODULES, ng_port=ng_port, flags=SBC_FLAGS
        )
        super().__init__(root, host, port, config)


class Kamailio(KamailioProcess):
    def __init__(
        self,
        root: Path,
        port: int,
        user: str,
        password: str,
        target_port: int,
        tls_port: int | None = None,
        host: str = "127.0.0.1",
        realm: str | None = None,
        tls_method: str = "TLSv1.2+",
        tls_name: str = "127.0.0.1",
    ) -> None:
        """``realm``: the one Kamailio challenges with; by default the request's domain (To's
        for REGISTER, From's for INVITE), as most registrars do. ``tls_method``: the TLS
        versions the TLS port takes (Kamailio's words, or "TLSv1.3": that alone);
        ``tls_name``: the name or address its self-signed certificate is issued for
        (``self.certificate``, to trust it)."""
        self.tls_port = tls_port
        root.mkdir(parents=True, exist_ok=True)
        tls_listen = tls_module = tls_log = ""
        env: dict[str, str] = {}
        #: The TLS port's certificate (its own CA: trust it with SSL_CERT_FILE).
        self.certificate: Path | None = None
        if tls_port is not None:
            self.certificate, _ = self_signed(root, tls_name)
            method = tls_method
            if tls_method == "TLSv1.3":
                method = "SSLv23"
                (root / "openssl.cnf").write_text(TLS_1_3_ONLY)
                env["OPENSSL_CONF"] = str(root / "openssl.cnf")
            (root / "tls.cfg").write_text(TLS_CONFIG.format(root=root, method=method))
            tls_listen = f"enable_tls=yes\nlisten=tls:{host}:{tls_port}"
            tls_module = f'loadmodule "tls.so"\nmodparam("tls", "config", "{root}/tls.cfg")'
            # What a TLS request looked like on arrival: its connection's version and source,
            # and the headers that name the sender (Via, Contact) or its route (Route).
            tls_log = (
                'if (proto == TLS) { xlog("L_NOTICE", "TLS $tls_version\\n"); '
                'xlog("L_NOTICE", "TLS $rm FROM $si:$sp VIA $hdr(Via) CONTACT $ct '
                'ROUTE $hdr(Route)\\n"); }'
            )
        super().__init__(
            root,
            host,
            port,
            CONFIG.format(
                host=host,
                port=port,
                modules=MODULES,
                user=user,
                password=password,
                target_port=target_port,
                tls_listen=tls_listen,
                tls_module=tls_module,
                tls_log=tls_log,
                realm_of_to=realm or "$td",
                realm_of_from=realm or "$fd",
            ),
            env,
        )
