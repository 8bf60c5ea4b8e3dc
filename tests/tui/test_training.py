"""Training: jobs listed and cancelled through the dialog; workers with their GPU readings.

No worker runs here: a submitted job stays queued until a claim leases it, and a
claim leases the oldest queued job. So each test submits the job it needs, the
cancel test works on its own job by id, and claims happen only in the worker test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from textual.widgets import DataTable

from appliance.cli.demo.clinic import job_spec, load_clinic
from appliance.wire.training import ClaimRequest, GpuSample, JobInfo, Telemetry
from tests.tui.conftest import LiveHub, settled, signed_in, text_of, until
from tui import ConsoleApp
from tui.dialogs import ConfirmDialog
from tui.screens import MainScreen
from tui.widgets.chart import Chart
from tui.widgets.jobs import JobsPane

pytestmark = pytest.mark.anyio
MODEL = "tiny-trained"


@pytest.fixture(scope="module")
def feature_store(live_hub: LiveHub) -> Iterator[None]:
    """The demo clinic's views, which a training job reads (loaded once)."""
    with live_hub.client("alice") as alice:
        load_clinic(alice, "ae-dxb")
    yield


def submit(live_hub: LiveHub) -> JobInfo:
    with live_hub.client("alice") as alice:
        return alice.submit_training(job_spec(MODEL))


def select_row(app: ConsoleApp, table_id: str, key: str) -> dict[str, str] | None:
    """Put the cursor on the row keyed ``key``; the row as shown, by column label (None:
    not listed yet)."""
    table = app.screen.query_one(f"#{table_id}", DataTable)
    labels = [str(column.label).split(" (")[0] for column in table.columns.values()]
    for i in range(table.row_count):
        cells = [str(cell) for cell in table.get_row_at(i)]
        if cells[0] == key:
            table.move_cursor(row=i)
            return dict(zip(labels, cells, strict=True))
    return None


def palette(app: ConsoleApp) -> list[str]:
    screen = app.screen
    assert isinstance(screen, MainScreen)
    return [command.title for command in screen.commands()]


async def test_a_job_is_listed_and_cancelled_through_the_dialog(
    live_hub: LiveHub, console: Callable[..., ConsoleApp], feature_store: None
) -> None:
    job = submit(live_hub)
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "alice")
        await pilot.press("4")
        row = await until(pilot, lambda: select_row(app, "jobs-table", str(job.id)))
        assert (row["model"], row["state"], row["why"]) == (MODEL, "queued", "manual")
        await until(
            pilot, lambda: f"job {job.id} · {MODEL} · queued" in text_of(app, "#job-summary")
        )
        assert "Cancel training job" in palette(app)

        await pilot.press("c")  # the tab's table has the keyboard
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.click("#cancel")  # a no changes nothing
        await settled(pilot)
        assert select_row(app, "jobs-table", str(job.id))["state"] == "queued"  # type: ignore[index]

        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.click("#confirm")
        await until(
            pilot,
            lambda: (select_row(app, "jobs-table", str(job.id)) or {}).get("state") == "cancelled",
        )
    with live_hub.client("alice") as alice:
        assert alice.training_job(job.id).state == "cancelled"


async def test_cancel_is_not_offered_without_training_submit(
    live_hub: LiveHub, console: Callable[..., ConsoleApp], feature_store: None
) -> None:
    job = submit(live_hub)
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "sara")  # an auditor reads jobs, cannot cancel them
        await pilot.press("4")
        await until(pilot, lambda: select_row(app, "jobs-table", str(job.id)))
        assert not app.screen.query_one(JobsPane).may("cancel")
        assert "c: cancel" not in text_of(app, "#jobs-pane .list-status")
        assert "Cancel training job" not in palette(app)
        await pilot.press("c")
        await settled(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
    with live_hub.client("alice") as alice:
        alice.cancel_training(job.id)  # leave no queued job to the next claim


async def test_workers_appear_after_a_claim_with_their_gpus(
    live_hub: LiveHub, console: Callable[..., ConsoleApp], feature_store: None
) -> None:
    job = submit(live_hub)
    gpu = GpuSample(
        index=0,
        name="Test GPU 16GB",
        utilization_pct=55,
        memory_used_mib=2048,
        memory_total_mib=16384,
        temperature_c=61,
        power_w=120,
    )
    with live_hub.worker_account("gpu-test") as worker:
        claimed = worker.claim_training(ClaimRequest(telemetry=Telemetry(gpus=[gpu])))
    with live_hub.worker_account("cpu-test") as worker:
        worker.claim_training(ClaimRequest(telemetry=Telemetry(note="no GPU")))
    assert claimed is not None and claimed.id == job.id  # the oldest queued job: this one

    app = console()
    async with app.run_test(size=(120, 40)) as pilot:
        await signed_in(pilot, live_hub, "admin")
        await pilot.press("4", "w")
        row = await until(pilot, lambda: select_row(app, "workers-table", "gpu-test"))
        assert (row["state"], row["job"], row["util"], row["temp"]) == (
            "busy",
            str(job.id),
            "55%",
            "61°C",
        )
        assert (row["memory"], row["GPU"]) == ("2.0/16 GiB", "Test GPU 16GB")
        chart = app.screen.query_one("#worker-chart", Chart)
        await until(pilot, lambda: chart.has_class("plotted"))  # one reading: a plot

        row = await until(pilot, lambda: select_row(app, "workers-table", "cpu-test"))
        assert (row["state"], row["GPU"]) == ("idle", "no GPU")
        await until(pilot, lambda: "no GPU" in chart.note)
