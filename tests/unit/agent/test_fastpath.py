"""Which requests the inference fast path takes, and which it leaves to Litestar."""

from __future__ import annotations

import pytest

from agent.fastpath import match_infer_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/models/bc/infer", ("bc", None)),
        ("/v2/models/bc/versions/12/infer", ("bc", 12)),
        ("/v2/models/bc", None),
        ("/v2/models//infer", None),
        ("/v2/models/bc/versions/x/infer", None),
        ("/v2/models/bc/versions/1/ready", None),
        ("/v1/models/bc/infer", None),
        ("/v2/models/bc/infer/more", None),
    ],
)
def test_only_the_two_infer_routes_take_the_fast_path(path, expected):
    assert match_infer_path(path) == expected
