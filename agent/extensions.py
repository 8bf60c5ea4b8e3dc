"""Two Open Inference Protocol extensions as Triton defines them, so stock clients that
call them (``get_model_repository_index``, ``get_inference_statistics``) get answers:

* **model repository** (``POST /v2/repository/index``): every model version this agent
  has loaded, ``READY``;
* **statistics** (``GET /v2/models[/{name}[/versions/{v}]]/stats``): per model version,
  inferences that succeeded and failed and the time spent on the successful ones, read
  off the same counters ``/metrics`` shows; executions are the model's runs, fewer than
  its inferences when requests are batched (:mod:`agent.batching`). Queue and per-phase
  times are not measured separately and are reported as zero rather than guessed.
"""

from __future__ import annotations

from typing import Any

from agent.batching import Batchers
from agent.metrics import AgentMetrics
from agent.repository import ModelRepository

EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics"]


def repository_index(repository: ModelRepository) -> list[dict[str, str]]:
    return [
        {"name": name, "version": str(version), "state": "READY", "reason": ""}
        for name, version in sorted(repository.loaded())
    ]


def statistics(
    repository: ModelRepository,
    metrics: AgentMetrics,
    batchers: Batchers,
    name: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Triton's statistics document for the loaded versions that match; 404 (through
    ``repository.get``) for a model or version this agent does not serve."""
    if name is not None:
        repository.get(name, version)
    totals = metrics.totals()
    stats = []
    for model, ver in sorted(repository.loaded()):
        if (name is not None and model != name) or (version is not None and ver != version):
            continue
        success = failed = 0.0
        seconds = 0.0
        for (sample, m, v, _variant, outcome), value in totals.samples.items():
            if (m, v) != (model, str(ver)):
                continue
            if sample == "appliance_agent_requests_total":
                if outcome == "ok":
                    success += value
                else:
                    failed += value
            elif sample == "appliance_agent_request_seconds_sum":
                seconds += value
        stats.append(
            {
                "name": model,
                "version": str(ver),
                "last_inference": int(totals.last.get((model, ver), 0.0) * 1000),
                "inference_count": int(success),
                "execution_count": batchers.runs(model, ver, int(success)),
                "inference_stats": {
                    "success": {"count": int(success), "ns": int(seconds * 1e9)},
                    "fail": {"count": int(failed), "ns": 0},
                    "queue": {"count": 0, "ns": 0},
                    "compute_input": {"count": 0, "ns": 0},
                    "compute_infer": {"count": 0, "ns": 0},
                    "compute_output": {"count": 0, "ns": 0},
                },
                "batch_stats": [],
            }
        )
    return {"model_stats": stats}
