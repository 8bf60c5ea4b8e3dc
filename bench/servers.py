"""Starting the comparison servers (raw-ASGI floor, MLServer) and measuring processes."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lean_client import BenchError, get_status

BENCH_DIR = Path(__file__).resolve().parent
MLSERVER_RUNTIME = BENCH_DIR / "mlserver_runtime"
# httptools is added so that MLServer's uvicorn parses HTTP with the same parser as
# the agent (uvicorn picks it when installed; without it MLServer falls back to h11).
MLSERVER_PACKAGES = ("mlserver", "onnxruntime", "numpy", "httptools")
MLSERVER_BASE_PYTHON = os.environ.get("BENCH_MLSERVER_PYTHON", "python3.11")


def _mlserver_venv() -> Path:
    """MLServer's environment: $BENCH_MLSERVER_VENV, else one in the user's cache folder
    named for the packages and this Python, shared by every checkout on the machine, so a
    fresh clone (CI's) does not build it again."""
    if chosen := os.environ.get("BENCH_MLSERVER_VENV"):
        return Path(chosen)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = "-".join((*MLSERVER_PACKAGES, Path(MLSERVER_BASE_PYTHON).name))
    return cache / "appliance-bench" / f"venv-{key}"


MLSERVER_VENV = _mlserver_venv()
HOST = "127.0.0.1"


@dataclass
class Proc:
    """A server process in its own session, with its output in a log file."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError(f"{self.name} is not running")
        return self.process.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env={**os.environ, **self.env},
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_group(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
    except ProcessLookupError:
        process.wait(timeout)


def wait_ready(
    port: int,
    path: str,
    started: float,
    process: subprocess.Popen[bytes] | None,
    what: str,
    timeout: float = 60.0,
) -> float:
    """Poll ``path`` every 5 ms until it answers 200; seconds since ``started``."""
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if process is not None and process.poll() is not None:
            raise BenchError(f"{what} exited with code {process.returncode} before it was ready")
        if get_status(HOST, port, path, timeout=2.0) == 200:
            return time.perf_counter() - started
        time.sleep(0.005)
    raise BenchError(f"{what} not ready after {timeout:.0f} s")


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB (10^6 bytes), from /proc/<pid>/status."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024 / 1e6
    return values["VmRSS"], values["VmHWM"]


def floor_process(model: Path, name: str, port: int, log_dir: Path) -> Proc:
    return Proc(
        name="floor (raw ASGI)",
        argv=[
            sys.executable,
            str(BENCH_DIR / "floor_asgi.py"),
            "--model",
            str(model),
            "--name",
            name,
            "--port",
            str(port),
        ],
        port=port,
        log_path=log_dir / "floor.log",
    )


# -- MLServer ----------------------------------------------------------------------


def ensure_mlserver_venv(log: IO[str]) -> Path:
    """Create MLServer's environment on first use; return its ``mlserver`` executable."""
    exe = MLSERVER_VENV / "bin" / "mlserver"
    python = MLSERVER_VENV / "bin" / "python"
    MLSERVER_VENV.parent.mkdir(parents=True, exist_ok=True)
    # one builder at a time: checkouts on one machine share the environment
    with open(MLSERVER_VENV.parent / f".{MLSERVER_VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.exists() and _has_packages(python):
            return exe
        print(f"creating {MLSERVER_VENV} (first run only; needs the package index)…", file=log)
        if not python.exists():
            subprocess.run([MLSERVER_BASE_PYTHON, "-m", "venv", str(MLSERVER_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *MLSERVER_PACKAGES], check=True)
    if not exe.exists():
        raise BenchError(f"pip install did not provide {exe}")
    return exe


def _has_packages(python: Path) -> bool:
    probe = "import mlserver, onnxruntime, numpy, httptools"
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def mlserver_version() -> str:
    python = MLSERVER_VENV / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", "import mlserver; print(mlserver.__version__)"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or "?"


def mlserver_process(
    exe: Path, model: Path, name: str, http_port: int, grpc_port: int, root: Path
) -> Proc:
    """``mlserver start <root>`` with the fastest settings MLServer offers for this case.

    parallel_workers=0 (inference in the server process), metrics server off,
    gzip middleware off, debug off (no access log). gRPC cannot be turned off in
    MLServer 1.x: it listens on its own port and stays idle.
    """
    root.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": HOST,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "parallel_workers": 0,
        "metrics_endpoint": None,
        "gzip_enabled": False,
        "debug": False,
        "load_models_at_startup": True,
    }
    model_settings = {
        "name": name,
        "implementation": "onnx_model.OnnxModel",
        "parameters": {"uri": str(model), "version": "1"},
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    model_dir = root / name  # MLServer expects the folder to be named after the model
    model_dir.mkdir(exist_ok=True)
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    return Proc(
        name="MLServer",
        argv=[str(exe), "start", str(root)],
        port=http_port,
        log_path=root.parent / "logs" / "mlserver.log",
        cwd=root,
        env={"PYTHONPATH": str(MLSERVER_RUNTIME)},
    )


# -- CPU accounting ----------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> tuple[float, float]:
    """(user + nice + system, steal) CPU seconds of the whole machine since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, steal = int(fields[0]), int(fields[1]), int(fields[2]), int(fields[7])
    return (user + nice + system) / _TICK, steal / _TICK


def process_cpu_s(pid: int) -> float:
    """user + system CPU seconds of one process (all its threads); 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class OtherLoad:
    """CPU used by processes other than ours (bench, server, hub) during a block."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = [os.getpid(), *pids]
        self.started = time.perf_counter()
        self.machine, self.steal = machine_cpu_s()
        self.ours = sum(process_cpu_s(p) for p in self.pids)

    def stop(self) -> tuple[float, float, float]:
        """(CPU s of other processes, steal s, wall s) over the block.

        The kernel counts CPU time in 10 ms ticks: sum several blocks before reading
        a percentage into it.
        """
        wall = time.perf_counter() - self.started
        machine, steal = machine_cpu_s()
        ours = sum(process_cpu_s(p) for p in self.pids)
        other = (machine - self.machine) - (ours - self.ours)
        return max(other, 0.0), steal - self.steal, wall
