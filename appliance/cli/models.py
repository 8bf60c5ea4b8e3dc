"""``appliance model …``: import, list, promote and train models on a hub."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.table import Table

from appliance.cli.connect import hub_flags, user_client
from appliance.cli.output import console
from appliance.errors import ConfigError
from appliance.wire.registry import VersionInfo


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _print_version(info: VersionInfo) -> None:
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(info.metrics.items())) or "-"
    console.print(
        f"[bold]{info.name}[/] version [bold]{info.version}[/] is [cyan]{info.stage}[/] "
        f"(bundle {info.bundle_sha256[:12]}, runtimes {', '.join(info.runtimes)}; {metrics})"
    )
    for runtime, why in sorted(info.runtime_notes.items()):
        console.print(f"  no {runtime}: {why}", highlight=False)


def _model_upload(path: Path, sample: bytes | None, work: Path) -> Path:
    """The file to send for the model at ``path``: pickles (and MLflow directories holding
    one) converted to ONNX on this machine, folders zipped
    (:mod:`hub.registry.formats.local`)."""
    if not path.exists():
        raise ConfigError(f"cannot read model {path}: no such file or directory")
    try:
        # lazy: the hub extra, absent on agent boxes
        from hub.registry.formats.local import for_upload
    except ImportError:  # a machine with the CLI alone: the hub converts what it can
        return path
    upload = for_upload(path, sample, work)
    if upload.converted_here:
        console.print(f"converted the {upload.format.value} model to ONNX on this machine")
    return upload.path


def model_import(args: argparse.Namespace) -> int:
    metrics = json.loads(args.metrics) if args.metrics else {}
    sample = _read(args.sample, "sample inputs") if args.sample else None
    with tempfile.TemporaryDirectory() as work, user_client(args) as hub:
        model = _model_upload(args.file, sample, Path(work))
        try:
            stream = model.open("rb")
        except OSError as exc:
            raise ConfigError(f"cannot read model {model}: {exc.strerror}") from exc
        with stream:
            info = hub.upload_model(
                args.name,
                stream,
                reference_npy=_read(args.reference, "reference sample") if args.reference else None,
                sample=sample,
                tolerance={
                    k: v for k, v in (("atol", args.atol), ("rtol", args.rtol)) if v is not None
                },
                metrics=metrics,
                lineage={"source": args.file.name},
                zones=args.zone,
            )
    _print_version(info)
    return 0


def model_list(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        models = hub.list_models()
        table = Table("model", "version", "stage", "created (UTC)", "accuracy", "runtimes")
        for summary in models:
            for v in hub.get_model(summary.name).versions:
                accuracy = v.metrics.get("accuracy")
                table.add_row(
                    v.name,
                    str(v.version),
                    v.stage,
                    v.created_at[:19],
                    f"{accuracy:.4f}" if accuracy is not None else "-",
                    ", ".join(v.runtimes),
                )
    if not models:
        console.print("no models registered yet; try 'appliance model import FILE.onnx --name N'")
    else:
        console.print(table)
    return 0


def model_promote(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        info = hub.change_stage(args.name, args.version, args.stage)
    _print_version(info)
    if info.stage != args.stage:
        console.print(
            f"approval recorded ({len(info.approvals)}: {', '.join(info.approvals)}); "
            "production needs more approvals from other approvers"
        )
    return 0


def model_expose(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        info = hub.approve_exposure(args.name, args.version)
    _print_version(info)
    have = len([a for a in info.exposure_approvals if a != info.created_by])
    console.print(
        f"exposure approvals: {have} of {info.approvals_required}"
        + (
            "; it may serve in rollout rings and A/B variants"
            if have >= info.approvals_required
            else "; more approvers (not the author) are needed"
        )
    )
    return 0


def model_train(args: argparse.Namespace) -> int:
    # lazy: the hub extra, absent on agent boxes
    from hub.training.tabular import TabularParams, train_tabular

    with console.status("training the built-in tabular classifier…"):
        result = train_tabular(TabularParams(epochs=args.epochs, seed=args.seed))
    with user_client(args) as hub:
        info = hub.upload_model(
            args.name,
            result.onnx_bytes,
            reference_npy=result.reference_npy,
            metrics=result.metrics,
            lineage=result.lineage,
            zones=args.zone,
        )
    _print_version(info)
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    model = sub.add_parser("model", help="manage models in the hub's registry")
    msub = model.add_subparsers(dest="model_command", required=True)
    hub_flag = hub_flags()

    imp = msub.add_parser("import", parents=[hub_flag], help="register a model trained elsewhere")
    imp.add_argument(
        "file",
        type=Path,
        help="an .onnx file; scikit-learn (.skops, or a joblib/pickle file, converted to "
        "ONNX here), PyTorch (TorchScript, torch.export .pt2, or torch.save, converted "
        "here; give --sample where the model records no input shapes) or an MLflow model "
        "directory",
    )
    imp.add_argument("--name", required=True, help="model name")
    imp.add_argument("--reference", type=Path, help=".npy sample of training inputs (for drift)")
    imp.add_argument(
        "--sample",
        type=Path,
        help="inputs the model accepts, to probe it and cut its test vectors from: .npz "
        "(one array per input, examples along the first axis) or JSON (a v2 request)",
    )
    imp.add_argument("--atol", type=float, help="absolute tolerance of test vectors (1e-5)")
    imp.add_argument("--rtol", type=float, help="relative tolerance of test vectors (1e-4)")
    imp.add_argument("--metrics", help="JSON object of metrics, e.g. '{\"accuracy\": 0.97}'")
    imp.add_argument(
        "--zone",
        action="append",
        help="residency zone of the training data (repeatable; default the hub's)",
    )
    imp.set_defaults(func=model_import)

    lst = msub.add_parser("list", parents=[hub_flag], help="list models and versions")
    lst.set_defaults(func=model_list)

    pro = msub.add_parser("promote", parents=[hub_flag], help="move a version to another stage")
    pro.add_argument("name")
    pro.add_argument("version", type=int)
    pro.add_argument("stage", choices=["candidate", "staging", "production", "archived"])
    pro.set_defaults(func=model_promote)

    exp = msub.add_parser(
        "expose",
        parents=[hub_flag],
        help="approve a staging version for live traffic in rollout rings and A/B variants",
    )
    exp.add_argument("name")
    exp.add_argument("version", type=int)
    exp.set_defaults(func=model_expose)

    train = msub.add_parser(
        "train", parents=[hub_flag], help="train the built-in classifier here and register it"
    )
    train.add_argument("--name", required=True)
    train.add_argument("--epochs", type=int, default=60)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--zone", action="append", help="residency zone of the training data (default the hub's)"
    )
    train.set_defaults(func=model_train)
