"""The child process that converts an upload (``python -m hub.registry.formats.child``).

Arguments: the upload, where to write the ONNX file, and optionally a sample file. The
last line on stdout is the format converted from (exit 0) or a JSON refusal (exit 3).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.errors import ApplianceError
from hub.registry.formats.convert import to_onnx
from hub.registry.samples import read_arrays

REFUSED = 3


def main(argv: list[str]) -> int:
    source, out = Path(argv[0]), Path(argv[1])
    try:
        sample = read_arrays(Path(argv[2]).read_bytes()) if len(argv) > 2 else None
        fmt = to_onnx(source, out, sample)
    except ApplianceError as exc:
        print(json.dumps({"error": exc.message, "hint": exc.hint}))
        return REFUSED
    print(fmt.value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
