"""Run by the preflight role with the host's Python: its version, glibc, the free space
where ``sys.argv[1]`` goes, and whether it can make a virtual environment (one JSON line)."""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

where = os.path.abspath(sys.argv[1])
while not os.path.exists(where):
    where = os.path.dirname(where)
with tempfile.TemporaryDirectory() as scratch:
    made = subprocess.run(
        [sys.executable, "-m", "venv", os.path.join(scratch, "venv")],
        capture_output=True,
        text=True,
    )
error = "" if made.returncode == 0 else " ".join((made.stderr or made.stdout).split())[:400]
print(
    json.dumps(
        {
            "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "glibc": platform.libc_ver()[1] or "0",
            "free_gb": round(shutil.disk_usage(where).free / 1e9, 1),
            "free_at": where,
            "venv_error": error,
        }
    )
)
