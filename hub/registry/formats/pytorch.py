"""PyTorch models to ONNX: TorchScript and ``nn.Module`` traced on example inputs with the
TorchScript exporter, ``torch.export`` programs with the exporter built for them."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from appliance.errors import UnprocessableInputError
from hub.registry.formats.detect import unconvertible

OPSET = 17
"""Opset of traced exports: what ONNX Runtime and OpenVINO both run."""


def load_torchscript(path: Path) -> Any:
    import torch  # lazy: torch takes 1 s; only PyTorch uploads need it

    try:
        return torch.jit.load(str(path), map_location="cpu").eval()  # type: ignore[no-untyped-call]
    except Exception as exc:  # torch raises RuntimeError with C++ context
        raise unconvertible("model: not a loadable TorchScript module", exc) from exc


def module_to_onnx(
    module: Any,
    example: dict[str, np.ndarray],
    out: Path,
    dynamic: dict[str, list[int]] | None = None,
) -> None:
    """Trace ``module`` on ``example`` (its forward's arguments in order, by input name);
    ``dynamic`` names each input's dynamic axes (default: the first), and outputs take a
    dynamic first axis."""
    import torch  # lazy: torch takes 1 s; only PyTorch uploads need it

    if not example:
        raise UnprocessableInputError(
            "model: a PyTorch module records no input shapes: give sample inputs",
            hint="'appliance model import model.pt --sample inputs.npz' with one array per "
            "forward() argument, in order, examples along the first axis",
        )
    args = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in example.values())
    try:
        with torch.no_grad():
            result = module(*args)
    except Exception as exc:
        raise unconvertible("model: the module could not run on the sample inputs", exc) from exc
    results = result if isinstance(result, tuple | list) else (result,)
    if not all(isinstance(r, torch.Tensor) for r in results):
        raise UnprocessableInputError("model: forward() must return a tensor or a tuple of them")
    outputs = ["output"] if len(results) == 1 else [f"output_{i}" for i in range(len(results))]
    axes = dynamic or {name: [0] for name in example}
    dynamic_axes = {n: {a: f"{n}_{a}" for a in axes.get(n, [])} for n in example}
    dynamic_axes |= {n: {0: "batch"} for n in outputs}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(out),
                dynamo=False,
                input_names=list(example),
                output_names=outputs,
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
            )
    except Exception as exc:
        raise unconvertible("model: PyTorch could not export the module to ONNX", exc) from exc


def exported_to_onnx(path: Path, out: Path) -> None:
    """Convert a saved ``torch.export`` program, keeping its input names and dynamic axes."""
    import torch  # lazy: torch takes 1 s; only PyTorch uploads need it

    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise unconvertible("model: not a loadable torch.export program", exc) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(program, dynamo=True, verbose=False)
            assert onnx_program is not None
            onnx_program.save(str(out))
    except Exception as exc:
        raise unconvertible("model: PyTorch could not export the program to ONNX", exc) from exc
