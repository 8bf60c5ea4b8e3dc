"""Uploads and the hub's memory: what a large model upload costs the hub's process.

A real hub on loopback takes, from a signed-in engineer, a file streamed from disk:

* a file that is no model (random bytes, refused with 4xx once it is on disk): what the
  upload path itself holds in memory, the body streamed to disk and hashed on the way;
* an ONNX model of about the same size (one MatMul, its weights inline): the upload
  plus what checking a model costs (ONNX reads it; ONNX Runtime runs the probes).

For each, the growth of the hub's peak resident memory (VmHWM, reset before each upload
through ``/proc/<pid>/clear_refs``) is printed beside the file's size. Target, printed
with PASS or MISS: the refused upload grows the hub's peak by at most 10% of its size
(before streaming, a 100 MB upload grew the hub by about 100 MB).

Run: ``python bench/bench_upload.py [--mb N] [--quick] [--json PATH]`` (Linux; root or
the hub's owner, for ``clear_refs``). Exit status 0 when every measurement was taken.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from bench_run import run, target_line
from servers import rss_mb

from appliance.cli.demo.processes import ServiceProcess, hub_process
from appliance.cli.demo.site import bootstrap_site
from appliance.errors import HubRejectedError

TARGET_SHARE = 0.10


def _model_file(path: Path, megabytes: int) -> None:
    from onnx import TensorProto, helper, numpy_helper, save_model

    side = int((megabytes * 1e6 / 4) ** 0.5)
    weights = np.random.default_rng(0).standard_normal((side, side), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "weights"], ["output"])],
        "big",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", side])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", side])],
        [numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save_model(model, str(path))


def _junk_file(path: Path, megabytes: int) -> None:
    rng = np.random.default_rng(1)
    with path.open("wb") as out:
        for _ in range(megabytes):
            out.write(rng.bytes(1_000_000))


def _peak_growth(hub: ServiceProcess, upload: Any) -> tuple[float, str]:
    """(MB the hub's peak RSS grew by during ``upload()``, what the hub answered)."""
    pid = hub.process.pid if hub.process else 0
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak := current
    before, _ = rss_mb(pid)
    try:
        upload()
        answer = "accepted"
    except HubRejectedError as exc:
        answer = f"{exc.status_code}: {str(exc)[:80]}"
    _, peak = rss_mb(pid)
    return peak - before, answer


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    site = bootstrap_site(root)
    hub = hub_process(site.hub_dir, tls=site.tls)
    hub.start()
    hub.wait_healthy()
    files = {"no model": root / "junk.bin", "ONNX model": root / "model.onnx"}
    _junk_file(files["no model"], args.mb)
    _model_file(files["ONNX model"], args.mb)
    figures: dict[str, Any] = {"upload_mb": args.mb, "uploads": {}}
    try:
        with site.client(hub.url, "alice") as engineer:
            small = root / "small.onnx"
            _model_file(small, 1)
            with small.open("rb") as warm:  # imports and first-request costs, not counted
                engineer.upload_model("warm-up", warm)
            for what, path in files.items():
                with path.open("rb") as stream:
                    grew, answer = _peak_growth(
                        hub, lambda s=stream: engineer.upload_model("big", s)
                    )
                size = path.stat().st_size / 1e6
                figures["uploads"][what] = {
                    "file_mb": size,
                    "peak_growth_mb": grew,
                    "answer": answer,
                }
                print(
                    f"{what:<11} {size:7.1f} MB: hub peak +{grew:7.1f} MB ({answer})",
                    file=sys.stderr,
                )
    finally:
        hub.stop()
    return figures


def render(figures: dict[str, Any]) -> str:
    out = [f"{'upload':<12}{'file MB':>9}{'hub peak growth MB':>20}  answer"]
    for what, row in figures["uploads"].items():
        out.append(
            f"{what:<12}{row['file_mb']:>9.1f}{row['peak_growth_mb']:>20.1f}  {row['answer']}"
        )
    junk = figures["uploads"]["no model"]
    share = junk["peak_growth_mb"] / junk["file_mb"]
    out.append("")
    out.append(target_line("refused upload: peak growth / its size", share, "<=", TARGET_SHARE))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, help="size of each upload in MB (default 200)")
    parser.add_argument("--quick", action="store_true", help="40 MB uploads")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    args = parser.parse_args(argv)
    args.mb = args.mb or (40 if args.quick else 200)
    if not os.access("/proc/self/clear_refs", os.W_OK):
        print("benchmark broke: /proc/<pid>/clear_refs is not writable here", file=sys.stderr)
        return 1
    return run("appliance-bench-upload-", lambda root: measure(args, root), render, args.json)


if __name__ == "__main__":
    sys.exit(main())
