"""A real Kubernetes node on this machine: Debian's containerd (CRI, runc) and kubelet.

Joins the loopback control plane of tests/operator/k8s_harness.py. Everything lives in one work
directory: containerd's config, root, state and socket; kubelet's root, config, pod logs; the
CNI config and IP allocations. Pods get a network namespace on a private bridge subnet with no
default route and no masquerading, so their traffic stays inside the namespaces the run made
(and the host end of the bridge). Images come from the local Docker daemon (`docker save`),
imported into containerd's k8s.io namespace; the sandbox image is built here from
tests/e2e/pause (no registry is reachable).

A second Node (``joined_node``) runs its containerd and kubelet in a network namespace of its
own, joined to the host by a veth pair; the host routes between the two pod subnets.

Needs root, cgroup v1 or v2, the binaries of scripts/build-k8s.sh and scripts/build-node.sh,
and the Debian packages containerd, runc, containernetworking-plugins.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

from tests.operator.k8s_harness import (
    LOOPBACK,
    REPO,
    ControlPlane,
    Proc,
    apply_objects,
    bin_dir,
    free_port,
    kubeconfig,
    missing_binaries,
    plain,
    wait_for,
)

PAUSE_IMAGE = "docker.io/siprtmp/pause:dev"
#: The project's images (scripts/build-images.sh), imported into the node.
IMAGES = ("siprtmp/bridge:dev", "siprtmp/operator:dev")
#: The API server reaches kubelet (logs, exec) at the node's Hostname address first; kubelet
#: only listens on loopback and refuses a loopback --node-ip, so the node is named localhost.
NODE_NAME = "localhost"
POD_SUBNET = "10.244.0.0/24"
BRIDGE = "srbe2e0"
GATEWAY = "10.244.0.1"
#: Every pod subnet and the link to the second node: pods route it to their gateway, and the
#: host holds a blackhole route for it, so none of these addresses is ever sent off the machine
#: (a node whose link is down included).
POD_RANGE = "10.244.0.0/16"
#: The second node's link to the host: a veth pair, this end in the host's namespace.
HOST_LINK_ADDRESS = "10.244.255.1"
#: The API server's `kubernetes` Service (--service-cluster-ip-range of the harness). There is
#: no kube-proxy: one DNAT rule sends pods' 10.96.0.1:443 to the API server on loopback.
API_SERVICE_IP = "10.96.0.1"
SERVICE_CIDR = "10.96.0.0/24"
CNI_BIN = Path("/usr/lib/cni")
#: Paths kubelet and containerd's CNI code use whatever their flags say (device plugins, the
#: serving certificate's default dir, container log symlinks, CNI result cache); removed after
#: the run when it created them.
HOST_PATHS = (Path("/var/lib/kubelet"), Path("/var/lib/cni"), Path("/var/log/containers"))
#: iptables chains kubelet makes in the host namespace (no flag turns them off).
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")
#: How long a node may stop reporting before the node lifecycle controller marks it NotReady.
NODE_MONITOR_GRACE_SECONDS = 30


@dataclass(frozen=True)
class NodeNetwork:
    """Where one node lives: its name, its pods' bridge and subnet, its address (InternalIP and
    ExternalIP: what host-network pods use and advertise) and, for a node of its own, the
    network namespace its containerd and kubelet run in (its address is then on the link to
    the host, where its kubelet listens; the node is named by it, so the API server dials it
    without DNS)."""

    name: str
    bridge: str
    pod_subnet: str
    gateway: str
    address: str
    netns: str | None = None

    @property
    def kubelet_address(self) -> str:
        """Where kubelet listens: loopback on the host (the node is named localhost)."""
        return LOOPBACK if self.netns is None else self.address

    @property
    def host_link(self) -> str:
        """The host's end of the veth pair to the node's namespace."""
        return f"{self.netns}-h"

    @property
    def node_link(self) -> str:
        return f"{self.netns}-n"


#: The first node: kubelet and containerd in the host's namespace, kubelet on loopback; its
#: address is its pods' gateway, where the far ends listen.
FIRST_NODE = NodeNetwork(NODE_NAME, BRIDGE, POD_SUBNET, GATEWAY, GATEWAY)
#: The second node, in namespace srbe2e-b: its pods reach the far ends on the first node's
#: gateway and the API server through the host, which routes between the two pod subnets.
SECOND_NODE = NodeNetwork(
    "10.244.255.2", "srbe2e1", "10.244.1.0/24", "10.244.1.1", "10.244.255.2", "srbe2e-b"
)
#: The taint kubelet registers with under an external cloud provider, until it initialises
#: the node (here: the harness, which sets the node's addresses).
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"


def missing_node_parts() -> list[str]:
    """What the node (and the control plane it joins) needs and this machine lacks."""
    missing = missing_binaries()
    missing += [n for n in ("kubelet", "kubectl") if not os.access(bin_dir() / n, os.X_OK)]
    missing += [t for t in ("containerd", "ctr", "runc", "docker") if not shutil.which(t)]
    missing += [
        str(CNI_BIN / p) for p in ("bridge", "host-local", "loopback") if not (CNI_BIN / p).exists()
    ]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def _run(argv: list[str], **kw: Any) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    out: str = proc.stdout
    return out


def build_pause_image() -> None:
    """siprtmp/pause:dev in Docker: a static Go program that blocks, FROM scratch."""
    with contextlib.suppress(AssertionError):
        _run(["docker", "image", "inspect", "siprtmp/pause:dev"])
        return
    src = REPO / "tests" / "e2e" / "pause"
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        shutil.copy(src / "pause.go", ctx)
        shutil.copy(src / "Dockerfile", ctx)
        (ctx / "go.mod").write_text("module pause\n\ngo 1.24\n")
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
        env["PATH"] = f"{env.get('PATH', '')}:/usr/local/go/bin"
        _run(["go", "build", "-ldflags=-s -w", "-o", "pause", "."], cwd=ctx, env=env)
        _run(["docker", "build", "-q", "-t", "siprtmp/pause:dev", "."], cwd=ctx)


def _node_cert(cp: ControlPlane, name: str, out: Path) -> tuple[Path, Path]:
    """A client certificate for system:node:NAME in group system:nodes, signed by the CA."""
    key, csr, crt = out / "node.key", out / "node.csr", out / "node.crt"
    (out / "node.ext").write_text("extendedKeyUsage=clientAuth\n")
    _run(
        [
            *("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key)),
            *("-out", str(csr), "-subj", f"/O=system:nodes/CN=system:node:{name}"),
        ]
    )
    _run(
        [
            *("openssl", "x509", "-req", "-in", str(csr), "-CA", str(cp.pki / "ca.crt")),
            *("-CAkey", str(cp.pki / "ca.key"), "-CAcreateserial", "-out", str(crt)),
            *("-days", "2", "-extfile", str(out / "node.ext")),
        ]
    )
    return crt, key


class Node:
    """containerd + kubelet registered as node ``net.name`` with the control plane ``cp``."""

    def __init__(self, cp: ControlPlane, workdir: Path, net: NodeNetwork = FIRST_NODE) -> None:
        self.cp = cp
        self.dir = workdir
        self.net = net
        self.name = net.name
        self.sock = workdir / "containerd" / "containerd.sock"
        self.containerd: Proc | None = None
        self.kubelet: Proc | None = None
        self.kubelet_port = free_port()
        self.timings: dict[str, float] = {}
        self.extra: list[Proc] = []
        #: iptables rules this run added, as (table, rule) to delete at teardown.
        self.rules: list[tuple[str, list[str]]] = []
        self.created = time.time()
        self.preexisting = {p for p in HOST_PATHS if p.exists()}
        self.chains_before = _kube_chains()

    # containerd -------------------------------------------------------------------------
    def _containerd_config(self) -> Path:
        d = self.dir / "containerd"
        cni = self.dir / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        (cni / "net.d" / "10-siprtmp-e2e.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "siprtmp-e2e",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": self.net.bridge,
                            # The bridge gets the gateway address (host ↔ pod), but pods get
                            # no default route and nothing is masqueraded: no way out.
                            "isGateway": True,
                            "isDefaultGateway": False,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [
                                    [{"subnet": self.net.pod_subnet, "gateway": self.net.gateway}]
                                ],
                                # The only routes besides the pod subnet: Services, other
                                # nodes' pods.
                                "routes": [{"dst": SERVICE_CIDR}, {"dst": POD_RANGE}],
                                "dataDir": str(cni / "ipam"),
                            },
                        }
                    ],
                }
            )
        )
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"

[grpc]
  address = "{self.sock}"

[ttrpc]
  address = "{d / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "{LOOPBACK}"
  stream_server_port = "0"
  enable_selinux = false
  # This machine is itself a container: lowering oom_score_adj (kubelet asks -998 for
  # sandboxes) is denied, and runc's init dies with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "{os.environ.get("SIPRTMP_E2E_RUNC", "runc")}"

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{cni / "net.d"}"
"""
        d.mkdir(parents=True, exist_ok=True)
        path = d / "config.toml"
        path.write_text(config)
        return path

    def _in_netns(self, argv: list[str]) -> list[str]:
        """``argv`` run in the node's network namespace (only that: the mounts, /sys and the
        cgroup hierarchies stay the host's, unlike `ip netns exec`)."""
        if self.net.netns is None:
            return argv
        return ["nsenter", f"--net=/var/run/netns/{self.net.netns}", "--", *argv]

    def ctr(self, *args: str, stdin: Any = None) -> str:
        return _run(["ctr", "--address", str(self.sock), "-n", "k8s.io", *args], stdin=stdin)

    def start_containerd(self) -> None:
        config = self._containerd_config()
        self.containerd = Proc(
            "containerd",
            self._in_netns(["containerd", "--config", str(config), "--log-level", "info"]),
            self.dir / "containerd.log",
        )

        def up() -> bool:
            assert self.containerd is not None
            if not self.containerd.alive():
                raise AssertionError(f"containerd exited:\n{self.containerd.tail()}")
            return self.sock.exists() and bool(self.ctr("version"))

        wait_for("containerd", up, timeout=30, interval=0.2)

    def import_images(self, *refs: str) -> None:
        """Docker images into containerd's k8s.io namespace (what the CRI plugin sees); one
        archive for all, so the layers the images share are written and read once."""
        saver = subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE)
        try:
            self.ctr("images", "import", "-", stdin=saver.stdout)
        finally:
            if saver.stdout:
                saver.stdout.close()
            saver.wait(120)
        if saver.returncode != 0:
            raise AssertionError(f"docker save {' '.join(refs)} failed")

    def expose_api_to_pods(self) -> None:
        """Pods reach the API server at 10.96.0.1:443: the bridge is made here (the CNI plugin
        adopts it) with route_localnet, so a DNAT to 127.0.0.1 is routable from it."""
        if self.net.netns is not None:
            self._link_to_host()
            return
        subprocess.run(
            ["ip", "route", "add", "blackhole", POD_RANGE], capture_output=True, check=False
        )
        ip = ["ip", "link", "add", BRIDGE, "type", "bridge"]
        subprocess.run(ip, capture_output=True, check=False)
        subprocess.run(
            ["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE], capture_output=True, check=False
        )
        _run(["ip", "link", "set", BRIDGE, "up"])
        Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet").write_text("1\n")
        port = self.cp.server.rsplit(":", 1)[1]
        self._add_rule(
            "nat",
            [
                *("PREROUTING", "-i", BRIDGE, "-s", POD_SUBNET, "-d", API_SERVICE_IP),
                *("-p", "tcp", "--dport", "443", "-j", "DNAT"),
                *("--to-destination", f"{LOOPBACK}:{port}"),
            ],
        )
        # Pod to pod (the operator reading a bridge's live status): bridged frames go through
        # iptables' FORWARD chain when br_netfilter is loaded, and dockerd sets its policy to
        # DROP. Found by the real-node tier: the operator never saw a bridge's live status.
        self._add_rule(
            "filter", ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"], insert=True
        )

    def _link_to_host(self) -> None:
        """The node's namespace, joined to the host by a veth pair: the host routes the node's
        pod subnet to it and DNATs 10.96.0.1:443 from it to the API server (kubelet and pods
        alike log in there); the namespace routes the other pods and Services to the host and
        forwards for its pods. It has no default route: nothing leaves what the run made."""
        net = self.net
        assert net.netns is not None
        ns, host_end, node_end = net.netns, net.host_link, net.node_link
        _run(["ip", "netns", "add", ns])
        _run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", node_end])
        _run(["ip", "link", "set", node_end, "netns", ns])
        _run(["ip", "addr", "add", f"{HOST_LINK_ADDRESS}/30", "dev", host_end])
        _run(["ip", "link", "set", host_end, "up"])
        _run(["ip", "-n", ns, "addr", "add", f"{net.address}/30", "dev", node_end])
        _run(["ip", "-n", ns, "link", "set", node_end, "up"])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        for dst in (POD_RANGE, SERVICE_CIDR):
            _run(["ip", "-n", ns, "route", "add", dst, "via", HOST_LINK_ADDRESS])
        _run(["ip", "route", "add", net.pod_subnet, "via", net.address])
        _run(self._in_netns(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        Path(f"/proc/sys/net/ipv4/conf/{host_end}/route_localnet").write_text("1\n")
        port = self.cp.server.rsplit(":", 1)[1]
        self._add_rule(
            "nat",
            [
                *("PREROUTING", "-i", host_end, "-d", API_SERVICE_IP),
                *("-p", "tcp", "--dport", "443", "-j", "DNAT"),
                *("--to-destination", f"{LOOPBACK}:{port}"),
            ],
        )
        for into, out in ((BRIDGE, host_end), (host_end, BRIDGE)):
            self._add_rule(
                "filter", ["FORWARD", "-i", into, "-o", out, "-j", "ACCEPT"], insert=True
            )

    def _make_cgroup_root(self, name: str) -> None:
        """Cgroup NAME in every hierarchy, for a second kubelet's pods: a kubelet removes the pod
        cgroups it does not know of, so two kubelets must not share `kubepods`."""
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            if not (hierarchy / "cgroup.procs").exists():
                continue
            root = hierarchy / name
            root.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):  # cgroup v1: empty until copied
                if (root / knob).exists() and not (root / knob).read_text().strip():
                    (root / knob).write_text((hierarchy / knob).read_text())

    def lose(self) -> None:
        """The node lost as a crashed host is: kubelet killed, its link cut (the host's routes
        to it stay, so what is sent there is dropped, not refused or sent elsewhere). Its
        containers run on, unseen."""
        assert self.kubelet is not None and self.net.netns is not None
        self.kubelet.popen.kill()
        self.kubelet.popen.wait(10)
        _run(["ip", "-n", self.net.netns, "link", "set", self.net.node_link, "down"])

    def _add_rule(self, table: str, rule: list[str], insert: bool = False) -> None:
        chain, *spec = rule
        _run(["iptables", "-t", table, "-I" if insert else "-A", chain, *spec])
        self.rules.append((table, rule))

    def start_workload_controllers(self) -> None:
        """kube-scheduler, the Deployment/ReplicaSet controllers (for the chart) and the node
        lifecycle controller (it lifts the not-ready taint kubelet registers the node with)."""
        b, kc = bin_dir(), str(self.cp.admin_kubeconfig)
        self.extra.append(
            Proc(
                "kube-scheduler",
                [
                    str(b / "kube-scheduler"),
                    f"--kubeconfig={kc}",
                    f"--authentication-kubeconfig={kc}",
                    f"--authorization-kubeconfig={kc}",
                    "--leader-elect=false",
                    f"--bind-address={LOOPBACK}",
                    f"--secure-port={free_port()}",
                ],
                self.dir / "kube-scheduler.log",
            )
        )
        self.extra.append(
            Proc(
                "kube-controller-manager-workloads",
                [
                    str(b / "kube-controller-manager"),
                    f"--kubeconfig={kc}",
                    # root-ca-cert-publisher: kube-root-ca.crt, which every pod's projected
                    # service-account volume needs before it can start.
                    # taint-eviction-controller: pods leave a lost node once their tolerations
                    # of its not-ready/unreachable taints run out.
                    "--controllers=deployment,replicaset,nodelifecycle,"
                    "taint-eviction-controller,root-ca-cert-publisher",
                    f"--root-ca-file={self.cp.pki / 'ca.crt'}",
                    # A node silent this long is NotReady (tainted, no new pods): shorter than
                    # the operator's BridgeLost deadline (45 s), so a lost bridge's redial is
                    # not scheduled onto the node it was lost with (the default is 50 s in 1.34).
                    f"--node-monitor-grace-period={NODE_MONITOR_GRACE_SECONDS}s",
                    "--leader-elect=false",
                    "--secure-port=0",
                ],
                self.dir / "kube-controller-manager-workloads.log",
            )
        )

    # kubelet ----------------------------------------------------------------------------
    def _kubelet_files(self) -> tuple[Path, Path]:
        k = self.dir / "kubelet"
        k.mkdir(parents=True, exist_ok=True)
        crt, key = _node_cert(self.cp, self.name, k)
        kc = k / "kubelet.kubeconfig"
        # A node in its own namespace reaches the API server as its pods do.
        server = self.cp.server if self.net.netns is None else f"https://{API_SERVICE_IP}:443"
        kc.write_text(yaml.safe_dump(kubeconfig(server, self.cp.pki / "ca.crt", cert=crt, key=key)))
        (k / "resolv.conf").write_text("")  # pods resolve nothing: no DNS traffic leaves
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.net.kubelet_address,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": LOOPBACK,
            "healthzPort": free_port(),
            # Only the API server's client certificate (the test CA's) is let in: the second
            # node's kubelet listens where its pods can reach it.
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.cp.pki / "ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "failSwapOn": False,
            "failCgroupV1": False,
            "resolvConf": str(k / "resolv.conf"),
            "podLogsDir": str(k / "pod-logs"),
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "nodeStatusUpdateFrequency": "2s",
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "registerNode": True,
        }
        if self.net.netns is not None:
            config["cgroupRoot"] = f"/{self.net.netns}"
        cfg = k / "config.yaml"
        cfg.write_text(yaml.safe_dump(config))
        return kc, cfg

    def _grant_node_role(self) -> None:
        """RBAC only (no Node authorizer here): bind system:node to the system:nodes group."""
        assert self.cp.api is not None
        body: dict[str, Any] = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "e2e-system-nodes"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:node",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Group",
                    "name": "system:nodes",
                }
            ],
        }
        with contextlib.suppress(kubernetes.utils.FailToCreateError):
            apply_objects(self.cp.api, [body])

    def start_kubelet(self) -> None:
        kc, cfg = self._kubelet_files()
        self._grant_node_role()
        self.kubelet = Proc(
            "kubelet",
            self._in_netns(
                [
                    str(bin_dir() / "kubelet"),
                    f"--config={cfg}",
                    f"--kubeconfig={kc}",
                    f"--root-dir={self.dir / 'kubelet' / 'root'}",
                    f"--cert-dir={self.dir / 'kubelet' / 'pki'}",
                    f"--hostname-override={self.name}",
                    f"--node-ip={self.net.address}",
                    # The harness plays the cloud controller: it gives the node its ExternalIP,
                    # which kubelet would otherwise overwrite with what it finds itself.
                    "--cloud-provider=external",
                    "--v=2",
                ]
            ),
            self.dir / "kubelet.log",
        )
        wait_for("node registered", self._initialise, timeout=120, interval=0.5)
        wait_for("node Ready", self._node_ready, timeout=120, interval=0.5)

    def _initialise(self) -> bool:
        """What a cloud controller does for a new node: its addresses set (InternalIP and
        ExternalIP, the node's address; Hostname, which the API server dials first) and the
        uninitialized taint lifted. False until kubelet has registered the node."""
        assert self.kubelet is not None and self.cp.api is not None
        if not self.kubelet.alive():
            raise AssertionError(f"kubelet exited:\n{self.kubelet.tail()}")
        core = kubernetes.client.CoreV1Api(self.cp.api)
        try:
            node = core.read_node(self.name)
        except ApiException:
            return False
        addresses = [
            {"type": "InternalIP", "address": self.net.address},
            {"type": "ExternalIP", "address": self.net.address},
            {"type": "Hostname", "address": self.name},
        ]
        core.patch_node_status(self.name, {"status": {"addresses": addresses}})
        taints = (plain(self.cp.api, node).get("spec") or {}).get("taints") or []
        kept = [t for t in taints if t["key"] != UNINITIALIZED_TAINT]
        core.patch_node(self.name, {"spec": {"taints": kept}})
        return True

    def _node_ready(self) -> bool:
        assert self.kubelet is not None and self.cp.api is not None
        if not self.kubelet.alive():
            raise AssertionError(f"kubelet exited:\n{self.kubelet.tail()}")
        core = kubernetes.client.CoreV1Api(self.cp.api)
        try:
            node = core.read_node(self.name)
        except ApiException:
            return False
        conditions = (node.status.conditions if node.status else None) or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    def start(self, images: tuple[str, ...] = ()) -> None:
        t0 = time.monotonic()
        build_pause_image()
        self.expose_api_to_pods()
        if self.net.netns is not None:
            self._make_cgroup_root(self.net.netns)
        self.start_containerd()
        self.timings["containerd_start_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        self.import_images(PAUSE_IMAGE.removeprefix("docker.io/"), *images)
        self.timings["image_import_s"] = time.monotonic() - t1
        t2 = time.monotonic()
        self.start_kubelet()
        self.timings["kubelet_ready_s"] = time.monotonic() - t2

    # teardown ---------------------------------------------------------------------------
    def delete_all_pods(self, timeout: float = 60) -> None:
        """Delete every pod of this node through the API and wait for kubelet to tear them
        down."""
        assert self.cp.api is not None
        core = kubernetes.client.CoreV1Api(self.cp.api)
        mine = f"spec.nodeName={self.name}"
        for pod in core.list_pod_for_all_namespaces(field_selector=mine).items:
            meta = pod.metadata
            if meta is None or not meta.name or not meta.namespace:
                continue
            with contextlib.suppress(ApiException):
                core.delete_namespaced_pod(meta.name, meta.namespace, grace_period_seconds=5)
        with contextlib.suppress(AssertionError):
            wait_for(
                "pod sandboxes gone",
                lambda: not self.ctr("tasks", "ls", "-q").strip(),
                timeout=timeout,
                interval=0.5,
            )

    def stop(self) -> None:
        """Pods, kubelet, leftover tasks, containerd, shims, mounts, bridge, cgroups."""
        for proc in self.extra:  # first, or ReplicaSets bring deleted pods back
            proc.stop()
        if self.kubelet is not None and self.kubelet.alive() and self.containerd is not None:
            with contextlib.suppress(Exception):
                self.delete_all_pods()
        if self.kubelet is not None:
            self.kubelet.stop()
        if self.containerd is not None and self.containerd.alive():
            with contextlib.suppress(AssertionError):
                for task in self.ctr("tasks", "ls", "-q").split():
                    with contextlib.suppress(AssertionError):
                        self.ctr("tasks", "kill", "-s", "SIGKILL", task)
                    with contextlib.suppress(AssertionError):
                        self.ctr("tasks", "delete", "-f", task)
        if self.containerd is not None:
            self.containerd.stop()
        self._kill_shims()
        self._unmount_all()
        if self.net.netns is None:
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
            subprocess.run(
                ["ip", "route", "del", "blackhole", POD_RANGE], capture_output=True, check=False
            )
        else:  # the pod bridge, the node's end of the link and its routes go with it
            subprocess.run(["ip", "netns", "del", self.net.netns], capture_output=True, check=False)
            subprocess.run(
                ["ip", "link", "del", self.net.host_link], capture_output=True, check=False
            )
        for table, rule in self.rules:
            subprocess.run(["iptables", "-t", table, "-D", *rule], capture_output=True, check=False)
        _remove_cgroups(self.net.netns or "kubepods")
        self._restore_host()

    def _restore_host(self) -> None:
        logs = Path("/var/log/containers")
        with contextlib.suppress(OSError):
            for link in logs.iterdir():
                if link.is_symlink() and os.readlink(link).startswith(str(self.dir)):
                    link.unlink()
        for path in HOST_PATHS:
            if path in self.preexisting:
                continue
            if path == logs:
                with contextlib.suppress(OSError):
                    path.rmdir()
            else:
                shutil.rmtree(path, ignore_errors=True)
        for tool, table, chain in _kube_chains() - self.chains_before:
            if chain == "KUBE-FIREWALL":
                for parent in ("INPUT", "OUTPUT"):
                    subprocess.run(
                        [tool, "-t", table, "-D", parent, "-j", chain],
                        capture_output=True,
                        check=False,
                    )
            subprocess.run([tool, "-t", table, "-F", chain], capture_output=True, check=False)
            subprocess.run([tool, "-t", table, "-X", chain], capture_output=True, check=False)

    def _kill_shims(self) -> None:
        """containerd-shim processes of this run (they outlive containerd by design)."""
        mark = str(self.dir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and mark in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount_all(self) -> None:
        prefix = str(self.dir)
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mnt in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", mnt], capture_output=True, check=False)
        netns_dir = Path("/var/run/netns")
        # Network namespaces CRI made for this run's pods are named cni-<uuid>; containerd
        # deletes them when sandboxes are removed, a killed run may leave them.
        with contextlib.suppress(OSError):
            for ns in netns_dir.glob("cni-*"):
                if ns.stat().st_mtime >= self.created:
                    subprocess.run(["umount", str(ns)], capture_output=True, check=False)
                    with contextlib.suppress(OSError):
                        ns.unlink()


@contextlib.contextmanager
def started_node(keep_dir: str | None = None) -> Iterator[Node]:
    """The control plane and a Node with the project's images, in a new work directory (or
    ``keep_dir``, kept afterwards); everything stopped and removed on exit. What the tier's
    session fixture and the node bench stand on; needs what missing_node_parts() names."""
    workdir = Path(keep_dir or tempfile.mkdtemp(prefix="siprtmp-node-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cp = ControlPlane(workdir)
    node = Node(cp, workdir)
    try:
        t0 = time.monotonic()
        cp.start()
        node.timings["control_plane_s"] = time.monotonic() - t0
        node.start(images=IMAGES)
        node.timings["total_start_s"] = time.monotonic() - t0
        print(f"\nreal node up in {workdir}: {node.timings}")
        yield node
    finally:
        node.stop()
        cp.stop()
        if not keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def joined_node(first: Node, net: NodeNetwork = SECOND_NODE) -> Iterator[Node]:
    """A second Node with the project's images, in ``net``'s network namespace, joined to
    ``first``'s control plane; its state in a subdirectory of ``first``'s work directory."""
    node = Node(first.cp, first.dir / f"node-{net.netns}", net)
    try:
        t0 = time.monotonic()
        node.start(images=IMAGES)
        node.timings["total_start_s"] = time.monotonic() - t0
        print(f"\nsecond node {node.name} up: {node.timings}")
        yield node
    finally:
        node.stop()


def _kube_chains() -> set[tuple[str, str, str]]:
    """(iptables tool, table, chain) of kubelet's chains that exist now."""
    found = set()
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            proc = subprocess.run(
                [tool, "-t", table, "-S"], capture_output=True, text=True, check=False
            )
            for line in proc.stdout.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == "-N" and parts[1] in KUBELET_CHAINS:
                    found.add((tool, table, parts[1]))
    return found


def _remove_cgroups(name: str) -> None:
    """Remove /sys/fs/cgroup/*/NAME (deepest first); only empty cgroups can go."""
    root = Path("/sys/fs/cgroup")
    for top in [*root.glob(f"*/{name}"), root / name]:
        if not top.is_dir():
            continue
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, top]:
            with contextlib.suppress(OSError):
                d.rmdir()
