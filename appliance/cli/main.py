"""Entry point of the ``appliance`` command."""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

from appliance import __version__
from appliance.cli import (
    agent_releases,
    audit,
    bundles,
    ca,
    features,
    inference_keys,
    keys,
    models,
    ops,
    people,
    residency,
    schema,
    serve,
    training,
    tui,
)
from appliance.cli.output import fail
from appliance.cli.upgrade import command as upgrade
from appliance.errors import ApplianceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="On-premises ML appliance: hub, edge agents and signed model bundles.",
    )
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir",
        type=lambda v: Path(v).expanduser(),
        help="where this command keeps its state "
        "(default $APPLIANCE_DATA_DIR or ~/.local/share/appliance/…)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parsers(sub, data_dir)
    ops.add_parsers(sub, data_dir)
    schema.add_parsers(sub, data_dir)
    keys.add_parsers(sub, data_dir)
    ca.add_parsers(sub, data_dir)
    people.add_parsers(sub, data_dir)
    models.add_parsers(sub)
    tui.add_parsers(sub)
    features.add_parsers(sub, data_dir)
    audit.add_parsers(sub, data_dir)
    residency.add_parsers(sub, data_dir)
    bundles.add_parsers(sub, data_dir)
    training.add_parsers(sub)
    inference_keys.add_parsers(sub)
    agent_releases.add_parsers(sub)
    upgrade.add_parsers(sub)

    demo = sub.add_parser(
        "demo",
        parents=[data_dir],
        help="run the whole loop on this machine: train, sign, sync, serve",
    )
    demo.add_argument(
        "--serve", action="store_true", help="leave hub and agents running and print their URLs"
    )
    demo.set_defaults(func=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    # lazy: the demo's clients and tables take 0.23 s; only 'appliance demo'
    from appliance.cli.demo.runner import run_demo

    return run_demo(args.data_dir, serve=args.serve)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ApplianceError as exc:
        fail(exc.message, exc.hint)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a defect: one clear line for the user, the traceback kept
        fail(
            f"unexpected {type(exc).__name__}: {exc}",
            f"a defect in appliance {__version__}; its traceback is in {_keep_traceback()}: "
            "send that file with the command you ran",
        )
        return 70  # EX_SOFTWARE


def _keep_traceback() -> str:
    """The current exception's traceback in a private file of the temporary folder."""
    with tempfile.NamedTemporaryFile(
        "w", prefix="appliance-crash-", suffix=".txt", delete=False
    ) as handle:
        handle.write(f"appliance {__version__}: {' '.join(sys.argv)}\n")
        handle.write(traceback.format_exc())
    return handle.name


if __name__ == "__main__":
    sys.exit(main())
