"""A real Kubernetes control plane on loopback for the operator's `k8s` test tier and benchmark.

etcd, kube-apiserver and kube-controller-manager (garbage collector, service accounts,
namespaces, disruption budgets) built from source by scripts/build-k8s.sh, with certificates
made at run time by openssl. There is no kubelet and no scheduler: tests drive pod status
themselves. The operator runs as a subprocess under the chart's ServiceAccount (a TokenRequest
token), so RBAC the chart forgets fails the tests instead of hiding behind an admin identity.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar, cast

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

from siprtmp_operator import GROUP, PLURAL, VERSION

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = os.environ.get("K8S_VERSION", "1.34.4")
LOOPBACK = "127.0.0.1"
T = TypeVar("T")


def bin_dir() -> Path:
    """Where scripts/build-k8s.sh put the binaries."""
    if os.environ.get("SIPRTMP_K8S_BIN"):
        return Path(os.environ["SIPRTMP_K8S_BIN"])
    cache = Path(os.environ.get("SIPRTMP_CACHE", "/var/cache/siprtmp"))
    return cache / f"k8s-{K8S_VERSION}" / "bin"


def missing_binaries() -> list[str]:
    """Names of the needed binaries that are not built."""
    names = ["etcd", "kube-apiserver", "kube-controller-manager", "helm"]
    return [n for n in names if not os.access(bin_dir() / n, os.X_OK)]


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    what: str, fn: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll ``fn`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
        except (ApiException, OSError, KeyError, ValueError) as exc:
            last_exc = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


def wait_explained(
    what: str,
    fn: Callable[[], T | None],
    explain: Callable[[], str],
    timeout: float = 30.0,
    interval: float = 0.1,
) -> T:
    """``wait_for``, failing with ``explain()`` (what was seen last) added to the message."""
    try:
        return wait_for(what, fn, timeout=timeout, interval=interval)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain()}") from None


def read_bridge(
    custom: kubernetes.client.CustomObjectsApi, ns: str, name: str
) -> dict[str, Any] | None:
    """The SipRtmpBridge ``ns/name`` as a plain dict, or None when there is none."""
    try:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cast(dict[str, Any], obj)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """CA, API server serving cert, admin client cert, service-account signing keys."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=siprtmp-test-ca",
        cwd=d,
    )
    (d / "server.ext").write_text(
        # 10.96.0.1: the `kubernetes` Service's address, as pods on a real node reach it.
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subj, ext in (
        ("server", "/CN=kube-apiserver", "server.ext"),
        ("admin", "/O=system:masters/CN=test-admin", "client.ext"),
    ):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subj,
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            ext,
            cwd=d,
        )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def kubeconfig(
    server: str,
    ca: Path,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig document for one user."""
    user: dict[str, Any] = {}
    if cert and key:
        user = {"client-certificate": str(cert), "client-key": str(key)}
    if token:
        user = {"token": token}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "u"}}],
        "current-context": "test",
    }


class Proc:
    """A child process with its output in a log file, stopped politely then firmly."""

    def __init__(
        self, name: str, argv: list[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.log = log
        self._fh = log.open("ab")
        self.popen = subprocess.Popen(
            argv,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            env=dict(env or os.environ),
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 60) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._fh.close()


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback, in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.pki = workdir / "pki"
        self.procs: list[Proc] = []
        self.api_port = free_port()
        self.server = f"https://{LOOPBACK}:{self.api_port}"
        self.admin_kubeconfig = workdir / "admin.kubeconfig"
        self.api: kubernetes.client.ApiClient | None = None

    def start(self) -> None:
        b = bin_dir()
        make_pki(self.pki)
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://{LOOPBACK}:{etcd_port}"
        self.procs.append(
            Proc(
                "etcd",
                [
                    str(b / "etcd"),
                    "--name",
                    "test",
                    "--data-dir",
                    str(self.dir / "etcd"),
                    "--listen-client-urls",
                    etcd_url,
                    "--advertise-client-urls",
                    etcd_url,
                    "--listen-peer-urls",
                    f"http://{LOOPBACK}:{peer_port}",
                    "--initial-advertise-peer-urls",
                    f"http://{LOOPBACK}:{peer_port}",
                    "--initial-cluster",
                    f"test=http://{LOOPBACK}:{peer_port}",
                    "--unsafe-no-fsync",
                    "--log-level",
                    "warn",
                ],
                self.dir / "etcd.log",
            )
        )
        wait_for("etcd", lambda: _http_ok(f"{etcd_url}/health"), timeout=30)
        p = self.pki
        self.procs.append(
            Proc(
                "kube-apiserver",
                [
                    str(b / "kube-apiserver"),
                    f"--etcd-servers={etcd_url}",
                    f"--bind-address={LOOPBACK}",
                    f"--advertise-address={LOOPBACK}",
                    f"--secure-port={self.api_port}",
                    f"--tls-cert-file={p / 'server.crt'}",
                    f"--tls-private-key-file={p / 'server.key'}",
                    f"--client-ca-file={p / 'ca.crt'}",
                    # How it proves itself to a kubelet (logs, exec) of the real-node tier.
                    f"--kubelet-client-certificate={p / 'admin.crt'}",
                    f"--kubelet-client-key={p / 'admin.key'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={p / 'sa.pub'}",
                    f"--service-account-signing-key-file={p / 'sa.key'}",
                    "--service-cluster-ip-range=10.96.0.0/24",
                    "--authorization-mode=RBAC",
                    # As kubeadm's clusters: the API server itself admits privileged pods, so
                    # what refuses them to the operator is the chart's admission policy.
                    "--allow-privileged=true",
                    "--endpoint-reconciler-type=none",
                    "--profiling=false",
                    f"--cert-dir={self.dir / 'certs'}",
                    "--v=0",
                ],
                self.dir / "kube-apiserver.log",
            )
        )
        self.admin_kubeconfig.write_text(
            yaml.safe_dump(
                kubeconfig(self.server, p / "ca.crt", cert=p / "admin.crt", key=p / "admin.key")
            )
        )
        self.api = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            str(self.admin_kubeconfig)
        )
        wait_for("kube-apiserver /readyz", self._ready, timeout=120, interval=0.5)
        self.procs.append(
            Proc(
                "kube-controller-manager",
                [
                    str(b / "kube-controller-manager"),
                    f"--kubeconfig={self.admin_kubeconfig}",
                    "--controllers=garbagecollector,serviceaccount,namespace,disruption",
                    "--leader-elect=false",
                    "--secure-port=0",
                    "--concurrent-gc-syncs=5",
                    "--v=0",
                ],
                self.dir / "kube-controller-manager.log",
            )
        )

    def _admin_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def get(self, path: str, accept: str = "application/json") -> Any:
        """GET ``path`` as the admin with a chosen Accept header (e.g. server-side tables)."""
        req = urllib.request.Request(f"{self.server}{path}", headers={"Accept": accept})
        with urllib.request.urlopen(req, timeout=10, context=self._admin_tls()) as resp:
            return json.loads(resp.read())

    def metrics(self) -> str:
        """The API server's /metrics (Prometheus text), read as the admin."""
        req = urllib.request.Request(f"{self.server}/metrics")
        with urllib.request.urlopen(req, timeout=10, context=self._admin_tls()) as resp:
            text: str = resp.read().decode()
            return text

    def _ready(self) -> bool:
        for proc in self.procs:
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(
                f"{self.server}/readyz", timeout=5, context=self._admin_tls()
            ) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def assert_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                raise AssertionError(f"{proc.name} died:\n{proc.tail()}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def rbac_refusals(log: str) -> list[str]:
    """The API server's RBAC refusals quoted in ``log`` (``... is forbidden: User "..." cannot
    ...``); admission refusals are not among them."""
    return re.findall(r'forbidden: User "[^"]*" cannot [^\n]*', log)


def helm(*args: str) -> str:
    """Run the built helm; return stdout (fails the caller with helm's stderr)."""
    proc = subprocess.run(
        [str(bin_dir() / "helm"), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def plain(api: kubernetes.client.ApiClient, obj: object) -> dict[str, Any]:
    """A client model as the plain dict the API sent (camelCase keys)."""
    result: dict[str, Any] = api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return result


def apply_objects(api: kubernetes.client.ApiClient, docs: list[dict[str, Any]]) -> None:
    """Create each object (the API server validates every one of them)."""
    for doc in docs:
        kubernetes.utils.create_from_dict(api, doc)  # type: ignore[no-untyped-call]


def install_crd(api: kubernetes.client.ApiClient) -> None:
    """Create the CRD from crds/ and wait until it is Established."""
    doc = yaml.safe_load((REPO / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_text())
    ext = kubernetes.client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(doc)

    def established() -> bool:
        crd = ext.read_custom_resource_definition(doc["metadata"]["name"])
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for("CRD Established", established, timeout=30)
    # The resource's storage initialises a moment after Established (429 until then).
    custom = kubernetes.client.CustomObjectsApi(api)
    wait_for(
        "custom resource storage ready",
        lambda: (
            custom.list_cluster_custom_object("siprtmp.io", "v1alpha1", "siprtmpbridges")
            is not None
        ),
        timeout=30,
    )


def service_account_kubeconfig(cp: ControlPlane, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of ServiceAccount namespace/name."""
    assert cp.api is not None
    core = kubernetes.client.CoreV1Api(cp.api)
    req = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=86400)
    )
    status = core.create_namespaced_service_account_token(name, namespace, req).status
    assert status is not None
    token = status.token
    path.write_text(yaml.safe_dump(kubeconfig(cp.server, cp.pki / "ca.crt", token=token)))
    return path


def deployment_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The SIPRTMP_* variables the chart's Deployment sets on the operator."""
    for doc in docs:
        if doc.get("kind") == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            return {
                e["name"]: str(e.get("value", "")) for e in container.get("env", []) if "value" in e
            }
    raise AssertionError("the chart renders no Deployment")


class OperatorProcess:
    """``sip-rtmp-operator`` as a subprocess, restartable, with its /readyz and /metrics."""

    def __init__(
        self,
        workdir: Path,
        kubeconfig_path: Path,
        env: Mapping[str, str],
        *,
        verbose: bool = True,
    ) -> None:
        self.workdir = workdir
        self.verbose = verbose
        self.kubeconfig = kubeconfig_path
        self.http_port = free_port()
        self.api_port = free_port()
        self.env = {
            **os.environ,
            **env,
            "KUBECONFIG": str(kubeconfig_path),
            "SIPRTMP_HTTP_HOST": LOOPBACK,
            "SIPRTMP_HTTP_PORT": str(self.http_port),
            # The REST API, when the chart enables it: on loopback too.
            "SIPRTMP_API_HOST": LOOPBACK,
            "SIPRTMP_API_PORT": str(self.api_port),
        }
        self.proc: Proc | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    def start(self, wait_ready: bool = True) -> None:
        self.starts += 1
        exe = shutil.which("sip-rtmp-operator", path=str(Path(sys.executable).parent))
        argv = [exe] if exe else [sys.executable, "-m", "siprtmp_operator.cli"]
        self.proc = Proc(
            "operator",
            [*argv, *(["--verbose"] if self.verbose else [])],
            self.workdir / f"operator-{self.starts}.log",
            self.env,
        )
        if wait_ready:
            wait_for("operator /readyz", self._ready, timeout=60, interval=0.2)

    def _ready(self) -> bool:
        assert self.proc is not None
        if not self.proc.alive():
            raise AssertionError(f"operator exited:\n{self.proc.tail()}")
        return _http_ok(f"{self.url}/readyz")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            text: str = resp.read().decode()
            return text

    @property
    def settings_env(self) -> dict[str, str]:
        """Its ``SIPRTMP_*`` settings without its own ports: for another operator run alike."""
        return {
            k: v
            for k, v in self.env.items()
            if k.startswith("SIPRTMP_") and not k.endswith(("_HTTP_PORT", "_API_PORT"))
        }

    def log_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("operator-*.log"))
        )


class StatusServer:
    """Serves a bridge status document at http://HOST:PORT/status, as the bridge does.

    The document is whatever the test sets; the operator reads it over real HTTP from the
    pod IP the test writes into the pod's status.
    """

    def __init__(self, host: str, port: int) -> None:
        self.doc: dict[str, Any] = {"phase": "Pending"}
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if self.path != "/status":
                    self.send_error(404)
                    return
                body = json.dumps(outer.doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def status_server(host: str, port: int) -> Iterator[StatusServer]:
    server = StatusServer(host, port)
    try:
        yield server
    finally:
        server.close()


class LocalKubelet:
    """Plays the kubelet for one bridge pod: runs its container locally, reports back.

    Reads the pod the operator created, materialises its mounted files (the spec, the password,
    the stream keys: each from its Secret) into a temporary directory, runs the container's
    command with those paths and with the status server bound to the pod IP it chose (a
    127.0.0.N address), writes the pod Running, then Succeeded/Failed with the exit code and
    the termination log as the termination message. A pod marked for deletion gets SIGTERM, and
    once the process has exited the pod is removed, as a kubelet does.

    ``command`` replaces the container's command: the tests run the real bridge,
    ``[".venv/bin/sip-rtmp-bridge"]``).
    """

    def __init__(
        self,
        core: kubernetes.client.CoreV1Api,
        ns: str,
        pod_name: str,
        *,
        ip: str,
        workdir: Path,
        command: list[str],
    ) -> None:
        self.core, self.ns, self.name, self.ip = core, ns, pod_name, ip
        self.dir = workdir
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None
        self.thread: threading.Thread | None = None
        self.exit_code: int | None = None
        self.error: BaseException | None = None

    def _argv(self, pod: dict[str, Any]) -> list[str]:
        """The container's arguments with each mounted Secret key written to a local file, as
        the kubelet would mount it (the spec and the SIP password both come from Secrets)."""
        container = pod["spec"]["containers"][0]
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        files = {"/dev/termination-log": self.dir / "termination-log"}
        for mount in container["volumeMounts"]:
            source = volumes[mount["name"]].get("secret")
            if source is None:
                continue
            secret = self.core.read_namespaced_secret(source["secretName"], self.ns)
            data = secret.data or {}
            if "items" not in source:  # the whole Secret, under the mount path as given
                mounted = self.dir / "mounts" / mount["mountPath"].lstrip("/")
                mounted.mkdir(parents=True, exist_ok=True)
                for key, value in data.items():
                    (mounted / key).write_bytes(base64.b64decode(value))
                continue
            for item in source["items"]:
                local = self.dir / mount["name"] / item["path"]
                local.parent.mkdir(exist_ok=True)
                local.write_bytes(base64.b64decode(data[item["key"]]))
                files[f"{mount['mountPath']}/{item['path']}"] = local
        # A directory argument holding whole-Secret mounts (--stream-keys-dir) is theirs too.
        whole = self.dir / "mounts"

        def mapped(arg: str) -> str:
            if arg in files:
                return str(files[arg])
            under = whole / arg.lstrip("/")
            return str(under) if arg.startswith("/") and under.is_dir() else arg

        args = [mapped(a) for a in container["args"]]
        args[args.index("--status-host") + 1] = self.ip
        return [*self.command, *args]

    def start(self, pod: dict[str, Any], node: str = "local-kubelet") -> None:
        """Bind the pod to ``node`` (the scheduler's part: deletion becomes graceful), run it."""
        if not pod["spec"].get("nodeName"):
            binding = kubernetes.client.V1Binding(
                metadata=kubernetes.client.V1ObjectMeta(name=self.name),
                target=kubernetes.client.V1ObjectReference(
                    api_version="v1", kind="Node", name=node
                ),
            )
            self.core.create_namespaced_pod_binding(
                self.name, self.ns, binding, _preload_content=False
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        log = (self.dir / "bridge.log").open("ab")
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        self.proc = subprocess.Popen(
            self._argv(pod), stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        self._patch_status(
            {
                "phase": "Running",
                "podIP": self.ip,
                "podIPs": [{"ip": self.ip}],
                "containerStatuses": [
                    self._container({"running": {"startedAt": _now()}}, ready=True)
                ],
            }
        )
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _container(self, state: dict[str, Any], ready: bool) -> dict[str, Any]:
        return {
            "name": "bridge",
            "ready": ready,
            "restartCount": 0,
            "started": ready,
            "image": "sip-rtmp-bridge:local",
            "imageID": "",
            "state": state,
        }

    def _patch_status(self, status: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(self.name, self.ns, {"status": status})

    def _watch(self) -> None:
        assert self.proc is not None
        try:
            signalled = False
            while self.proc.poll() is None:
                time.sleep(0.2)
                try:
                    pod = self.core.read_namespaced_pod(self.name, self.ns)
                except ApiException as exc:
                    if exc.status == 404:  # removed without grace: stop the process anyway
                        self.proc.send_signal(signal.SIGTERM)
                        break
                    raise
                if pod.metadata and pod.metadata.deletion_timestamp and not signalled:
                    self.proc.send_signal(signal.SIGTERM)
                    signalled = True
            code = self.proc.wait(30)
            self.exit_code = code
            term = self.dir / "termination-log"
            message = term.read_text()[-4096:] if term.exists() else ""
            with contextlib.suppress(ApiException):
                self._patch_status(
                    {
                        "phase": "Succeeded" if code == 0 else "Failed",
                        "containerStatuses": [
                            self._container(
                                {
                                    "terminated": {
                                        "exitCode": code,
                                        "reason": "Completed" if code == 0 else "Error",
                                        "message": message,
                                        "startedAt": _now(),
                                        "finishedAt": _now(),
                                    }
                                },
                                ready=False,
                            )
                        ],
                    }
                )
            if signalled:
                with contextlib.suppress(ApiException):
                    self.core.delete_namespaced_pod(self.name, self.ns, grace_period_seconds=0)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.thread is not None:
            self.thread.join(10)
        if self.error is not None:
            raise AssertionError(f"local kubelet for {self.name} failed: {self.error!r}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
