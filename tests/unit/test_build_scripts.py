"""The build scripts' checks of what they find cached: a broken or stale artifact is rebuilt,
never used. Run through bash exactly as scripts/build-*.sh source them."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.34.4"


def bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {script}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def rootfs_tarball(path: Path, members: list[str]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name in members:
            data = b"#!/bin/sh\n"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tarball_ok(path: Path) -> bool:
    checked = bash(f"source scripts/lib/rootfs.sh; tarball_ok '{path}'", {})
    return checked.returncode == 0


def test_a_root_filesystem_tarball_with_python_is_trusted(tmp_path: Path) -> None:
    tarball = rootfs_tarball(tmp_path / "base.tar", ["./etc/os-release", "./usr/bin/python3"])
    assert tarball_ok(tarball)


def test_a_directory_named_like_a_tarball_is_not_trusted(tmp_path: Path) -> None:
    """What mmdebstrap made of a name it did not recognise as a tarball's."""
    directory = tmp_path / "debian-python.tar"
    (directory / "usr" / "bin").mkdir(parents=True)
    (directory / "usr" / "bin" / "python3").write_text("")
    assert not tarball_ok(directory)


def test_a_truncated_or_foreign_tarball_is_not_trusted(tmp_path: Path) -> None:
    whole = rootfs_tarball(
        tmp_path / "whole.tar", ["./usr/bin/python3", *(f"./f{i}" for i in range(50))]
    )
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(whole.read_bytes()[:3000])
    assert not tarball_ok(truncated)
    assert not tarball_ok(rootfs_tarball(tmp_path / "no-python.tar", ["./usr/bin/perl"]))
    (tmp_path / "empty.tar").write_bytes(b"")
    assert not tarball_ok(tmp_path / "empty.tar")
    (tmp_path / "text.tar").write_text("not a tar\n")
    assert not tarball_ok(tmp_path / "text.tar")


def fake_binary(directory: Path, name: str, prints: str, status: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{prints}'\nexit {status}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def k8s_missing(cache: Path, *names: str) -> list[str]:
    listed = bash(
        f"source scripts/lib/k8s-build.sh; k8s_missing {' '.join(names)}",
        {"SIPRTMP_CACHE": str(cache), "K8S_VERSION": K8S_VERSION, "HELM_VERSION": "3.19.5"},
    )
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def test_cached_go_binaries_reporting_the_expected_version_are_kept(cache: Path) -> None:
    bin_dir = cache / f"k8s-{K8S_VERSION}" / "bin"
    fake_binary(bin_dir, "kube-apiserver", f"Kubernetes v{K8S_VERSION}")
    fake_binary(bin_dir, "kubectl", f"Client Version: v{K8S_VERSION}")
    fake_binary(bin_dir, "helm", "v3.19.5+g0000000")
    module = cache / f"k8s-{K8S_VERSION}" / "mod"
    module.mkdir(parents=True)
    (module / "go.mod").write_text("require (\n\tgo.etcd.io/etcd/server/v3 v3.6.4\n)\n")
    fake_binary(bin_dir, "etcd", "etcd Version: 3.6.4")
    assert k8s_missing(cache, "kube-apiserver", "kubectl", "helm", "etcd") == []
    assert all((bin_dir / name).exists() for name in ("kube-apiserver", "kubectl", "helm", "etcd"))


def test_a_stale_broken_or_absent_go_binary_is_removed_and_rebuilt(cache: Path) -> None:
    bin_dir = cache / f"k8s-{K8S_VERSION}" / "bin"
    fake_binary(bin_dir, "kube-apiserver", "Kubernetes v1.33.0")  # another version
    fake_binary(bin_dir, "kubelet", f"Kubernetes v{K8S_VERSION}", status=1)  # does not run
    (bin_dir / "kube-scheduler").write_bytes(b"\x7fELF truncated")  # not executable
    fake_binary(bin_dir, "etcd", "etcd Version: 3.6.4")  # no module says which etcd is wanted
    missing = k8s_missing(cache, "kube-apiserver", "kubelet", "kube-scheduler", "etcd", "kubectl")
    assert missing == ["kube-apiserver", "kubelet", "kube-scheduler", "etcd", "kubectl"]
    assert not (bin_dir / "kube-apiserver").exists()
    assert not (bin_dir / "kubelet").exists()
    assert not (bin_dir / "etcd").exists()


@pytest.mark.parametrize("failing", ["ruff check", "ruff format", "mypy", "lint-imports"])
def test_a_failing_fast_check_fails_the_test_command(tmp_path: Path, failing: str) -> None:
    """The test command stops at the first fast check that fails, with its status: a lint
    error must never be printed and then passed over."""
    tree = tmp_path / "repo"
    (tree / "scripts").mkdir(parents=True)
    (tree / "scripts" / "test.sh").write_text((REPO / "scripts" / "test.sh").read_text())
    (tree / "scripts" / "setup.sh").write_text("#!/usr/bin/env bash\n")
    bin_dir = tree / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    ran = tmp_path / "ran"
    for tool in ("ruff", "mypy", "lint-imports", "python"):
        (bin_dir / tool).write_text(
            "#!/usr/bin/env bash\n"
            f'echo "{tool} $*" >> {ran}\n'
            f'case "{tool} $*" in "{failing}"*) exit 1;; esac\n'
        )
    for script in [*bin_dir.iterdir(), tree / "scripts" / "setup.sh", tree / "scripts" / "test.sh"]:
        script.chmod(0o755)
    result = subprocess.run(
        ["bash", str(tree / "scripts" / "test.sh"), "unit"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0, result.stdout
    assert ran.read_text().splitlines()[-1].startswith(failing)  # nothing ran after it
