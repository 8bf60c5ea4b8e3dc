"""``appliance residency report``: the record of processing, from the audit log.

Every residency decision the hub made (allowed or refused) is an audit entry;
the report lists them as CSV — when, who, which flow, data from which zones to
which zone, under which rule, with what outcome — followed on screen by a
summary per flow, route and rule. It reads the hub's own database, like
``appliance audit verify --data-dir``.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections import Counter
from pathlib import Path

from rich.table import Table

from appliance.cli.audit import hub_database
from appliance.cli.output import console
from appliance.clock import iso_utc
from appliance.fsutil import atomic_write_bytes

COLUMNS = ("at", "actor", "flow", "data_zones", "to_zone", "rule", "outcome", "target", "policy")


def residency_report(args: argparse.Namespace) -> int:
    from hub.audit import AuditLog  # lazy: the hub extra, absent on agent boxes
    from hub.residency.gate import ACTION  # lazy: the hub extra, absent on agent boxes

    rows: list[dict[str, str]] = []
    with hub_database(args.data_dir) as session:
        for entry in AuditLog().entries(session):
            if entry.action != ACTION:
                continue
            detail = entry.detail
            rows.append(
                {
                    "at": iso_utc(entry.at),
                    "actor": entry.actor,
                    "flow": str(detail.get("flow", "")),
                    "data_zones": " ".join(detail.get("data_zones", [])),
                    "to_zone": str(detail.get("to_zone", "")),
                    "rule": str(detail.get("rule", "")),
                    "outcome": entry.outcome,
                    "target": entry.target,
                    "policy": str(detail.get("policy", "")),
                }
            )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(args.out, buffer.getvalue().encode(), mode=0o640)
    summary = Counter(
        (r["flow"], r["data_zones"], r["to_zone"], r["rule"], r["outcome"]) for r in rows
    )
    table = Table(
        "flow",
        "data from",
        "to",
        "rule",
        "outcome",
        "count",
        title="Record of processing: residency decisions",
    )
    for (flow, data, to, rule, outcome), count in sorted(summary.items()):
        table.add_row(flow, data, to, rule, outcome, str(count))
    console.print(table)
    console.print(f"{len(rows)} decisions written to {args.out}")
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    residency = sub.add_parser("residency", help="residency records for auditors")
    rsub = residency.add_subparsers(dest="residency_command", required=True)
    report = rsub.add_parser(
        "report", parents=[data_dir], help="write the record of processing (CSV) from the audit log"
    )
    report.add_argument("--out", type=Path, required=True, help="CSV file to write")
    report.set_defaults(func=residency_report)
