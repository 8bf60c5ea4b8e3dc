"""A minimal Debian 12 host with systemd as PID 1, as an operator's server would be: built
from Debian packages (debootstrap) into an ext4 image, booted with QEMU, reached over SSH
on a loopback port. ``make test-host`` installs the appliance on it with the playbooks.

The image holds what a minimal server install has, plus Python 3 for Ansible; not
``python3.11-venv`` (the archive brings it). QEMU emulates the CPU (TCG) with ``-cpu max``
unless ``APPLIANCE_TEST_HOST_KVM=1`` (on the machine this was built on, KVM stops at start
with an MSR assertion that a probe without a CPU does not show); ``-cpu max`` has the
x86-64-v2 level the wheels need (``qemu64`` lacks SSE4.2 and numpy dies with SIGILL).
Built once into ``.cache/test-host`` (root, a Debian mirror reachable); later runs boot a
copy of the image.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "test-host"
MIRROR = os.environ.get("APPLIANCE_TEST_HOST_MIRROR", "http://deb.debian.org/debian")
PACKAGES = (
    "linux-image-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "kmod",
    "dbus",
    "openssh-server",
    "python3",  # Ansible's; Debian 12's python3.11, without python3.11-venv
    "iproute2",
    "procps",
)
HOSTNAME = "apphost"
IMAGE_SIZE = "12G"


@dataclass(frozen=True)
class HostImage:
    image: Path
    kernel: Path
    initrd: Path
    key: Path
    """The private key root's authorized_keys trusts."""


def _run(argv: list[str], **kwargs: object) -> None:
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def _rootfs() -> Path:
    """debootstrap's tree, made once (``rootfs``; a cut-off run is started again)."""
    done = CACHE / "rootfs"
    if done.is_dir():
        return done
    partial = CACHE / "rootfs.part"
    shutil.rmtree(partial, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            "bookworm",
            str(partial),
            MIRROR,
        ]
    )
    partial.rename(done)
    return done


def _configure(tree: Path, public_key: str) -> None:
    """What an installer would have set: name, disk, network by DHCP, SSH for root by key."""
    (tree / "etc" / "hostname").write_text(HOSTNAME + "\n")
    (tree / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n")
    (tree / "etc" / "fstab").write_text("/dev/vda / ext4 defaults,errors=remount-ro 0 1\n")
    network = tree / "etc" / "systemd" / "network" / "10-dhcp.network"
    network.parent.mkdir(parents=True, exist_ok=True)
    network.write_text("[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n")
    ssh = tree / "root" / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(public_key)
    (ssh / "authorized_keys").chmod(0o600)
    wants = tree / "etc" / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("systemd-networkd.service", "ssh.service"):
        link = wants / unit
        if not link.is_symlink():  # links name the guest's paths: never follow them here
            for base in ("lib", "usr/lib"):
                if (tree / base / "systemd" / "system" / unit).exists():
                    link.symlink_to(f"/{base}/systemd/system/{unit}")
                    break
    serial = wants.parent / "getty.target.wants"
    serial.mkdir(exist_ok=True)
    # a login on the serial console for whoever debugs a boot (CACHE/console.log)
    if not (serial / "serial-getty@ttyS0.service").is_symlink():
        (serial / "serial-getty@ttyS0.service").symlink_to(
            "/lib/systemd/system/serial-getty@.service"
        )


def build() -> HostImage:
    """The image, kernel, initrd and SSH key; made once, reused afterwards."""
    image = CACHE / "debian-12.img"
    key = CACHE / "id_ed25519"
    if not key.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    tree = _rootfs()
    boot = tree / "boot"
    kernel = max(boot.glob("vmlinuz-*"))
    initrd = max(boot.glob("initrd.img-*"))
    if not image.exists():
        _configure(tree, (CACHE / "id_ed25519.pub").read_text())
        partial = image.with_suffix(".part")
        partial.unlink(missing_ok=True)
        _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(tree), str(partial), IMAGE_SIZE])
        partial.rename(image)
    return HostImage(image=image, kernel=kernel, initrd=initrd, key=key)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class VirtualHost:
    """A booted copy of the image: SSH and the appliance's ports forwarded to loopback."""

    image: HostImage
    disk: Path
    ports: dict[int, int] = field(default_factory=dict)
    """Guest port → loopback port here (22, 8700 hub, 8701 agent)."""
    memory_mb: int = 8192
    process: subprocess.Popen[bytes] | None = None

    @property
    def ssh_port(self) -> int:
        return self.ports[22]

    def start(self) -> None:
        shutil.copyfile(self.image.image, self.disk)  # sparse enough: mkfs -d wrote only data
        self.ports = {22: free_port(), 8700: free_port(), 8701: free_port()}
        forwards = ",".join(f"hostfwd=tcp:127.0.0.1:{h}-:{g}" for g, h in self.ports.items())
        kvm = os.environ.get("APPLIANCE_TEST_HOST_KVM") == "1"
        accel = ["-accel", "kvm", "-cpu", "host"] if kvm else ["-accel", "tcg", "-cpu", "max"]
        argv = [
            "qemu-system-x86_64", *accel, "-machine", "q35", "-smp", "2",
            "-m", str(self.memory_mb), "-nographic", "-no-reboot",
            "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
            "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet",
            "-drive", f"file={self.disk},if=virtio,format=raw",
            "-netdev", f"user,id=net0,{forwards}", "-device", "virtio-net-pci,netdev=net0",
            "-serial", f"file:{self.disk.with_suffix('.console.log')}", "-monitor", "none",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def ssh(self, command: str, *, timeout: float = 600, check: bool = True) -> str:
        done = subprocess.run(
            [*self.ssh_argv(), command], capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{command!r} on the host: exit {done.returncode}: {done.stderr}")
        return done.stdout

    def ssh_argv(self) -> list[str]:
        return [
            "ssh", "-i", str(self.image.key), "-p", str(self.ssh_port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "root@127.0.0.1",
        ]  # fmt: skip

    def wait_ready(self, timeout: float = 600) -> float:
        """Seconds until root logs in over SSH and systemd says it has booted."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"QEMU stopped: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                state = self.ssh("systemctl is-system-running --wait", timeout=60, check=False)
            except subprocess.TimeoutExpired:
                continue
            if state.strip() in ("running", "degraded"):
                return time.monotonic() - started
            time.sleep(2)
        raise AssertionError(f"the host did not boot within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.ssh("systemctl poweroff", timeout=30, check=False)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
