"""The hub's security as an attacker, a careless user and an auditor see it, over real HTTP.

Most tests share this module's hub (see ``conftest.py``). Two cases need a hub of
their own: a residency policy with two zones, and ``--approvals-required 2``.
Sign-in, refresh and enrolment share a budget of 30 requests a minute per
client address, so abusive requests are sent from other loopback addresses
(127.0.0.x) and the rate-limit test uses one of its own.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site, bootstrap_site
from appliance.client.hub import HubClient
from appliance.security.credentials import AgentCredentials, UserCredentials
from appliance.security.keys import KeyPair, init_keypair, public_pem
from appliance.settings import HubSettings
from appliance.wire.fleet import AgentInfo, EnrolmentRequest
from tests.harness.models import make_tiny_onnx
from tests.harness.site import publish, running_hub

pytestmark = pytest.mark.integration

OPEN = {
    "/health",
    "/api/v1/auth/sign-in",
    "/api/v1/auth/refresh",
    "/api/v1/agents/enrol",
    "/metrics",
}
POLICY = """
zones = ["ae-dxb", "ae-auh"]

[deploy]
ae-dxb = ["ae-dxb"]
ae-auh = ["ae-auh"]
"""


# -- helpers -----------------------------------------------------------------------------


def auth(client: HubClient) -> dict[str, str]:
    assert client.credentials is not None
    return {"authorization": f"Bearer {client.credentials.bearer()}"}


def http_from(address: str) -> httpx.Client:
    """A plain client whose requests come from another loopback address (own rate budget)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def audit_entries(auditor: HubClient, action: str, after: int = 0) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while True:
        page = httpx.get(
            f"{auditor.base_url}/api/v1/audit",
            params={"action": action, "after": after, "limit": 500},
            headers=auth(auditor),
            timeout=10,
        )
        assert page.status_code == 200, page.text
        batch = page.json()
        entries += batch
        if len(batch) < 500:
            return entries
        after = batch[-1]["seq"]


def last_refusal_seq(auditor: HubClient) -> int:
    """The seq of the newest access refusal (those after it are what the test caused)."""
    entries = audit_entries(auditor, "access.refused")
    return entries[-1]["seq"] if entries else 0


def signed_in(url: str, username: str, password: str) -> HubClient:
    with HubClient(url) as anonymous:
        tokens = anonymous.sign_in(username, password)
    return HubClient(
        url, credentials=UserCredentials(tokens["access_token"], tokens["refresh_token"], url)
    )


@dataclass
class Agent:
    info: AgentInfo
    key: KeyPair
    client: HubClient

    @property
    def id(self) -> int:
        return self.info.id


def _struct(obj: Any) -> Any:
    return msgspec.to_builtins(obj)


def enrolment_request(token: str, name: str, key: KeyPair) -> EnrolmentRequest:
    return EnrolmentRequest(
        token=token, name=name, public_key=public_pem(key.public).decode(), runtime="onnxruntime"
    )


def enrol(
    url: str, admin: HubClient, name: str, keys: Path, zone: str = "ae-dxb", group: str = "default"
) -> Agent:
    """Enrol ``name`` the way an agent does: its own key, a one-time token from the admin."""
    token = admin.create_enrolment_token(zone, group)["token"]
    key = init_keypair(keys / name, "agent")
    with HubClient(url) as anonymous:
        info = anonymous.enrol(enrolment_request(token, name, key))
    return Agent(info, key, HubClient(url, credentials=AgentCredentials(key, info.id)))


def upload(engineer: HubClient, name: str, **kwargs: Any) -> int:
    return engineer.upload_model(name, make_tiny_onnx(), **kwargs).version


def stage(client: HubClient, name: str, version: int, target: str) -> httpx.Response:
    return httpx.post(
        f"{client.base_url}/api/v1/models/{name}/versions/{version}/stage",
        json={"stage": target},
        headers=auth(client),
        timeout=30,
    )


@pytest.fixture(scope="module")
def auditor(site: Site, hub: ServiceProcess) -> Iterator[HubClient]:
    client = site.client(hub.url, "sara")
    yield client
    client.close()


@pytest.fixture(scope="module")
def keys(workdir: Path) -> Path:
    return workdir / "agent-keys"


# -- every route is guarded --------------------------------------------------------------


def test_every_route_declares_a_guard_and_only_the_known_ones_are_open(tmp_path: Path) -> None:
    from hub.app import create_app
    from hub.auth.guards import GUARD_ATTRIBUTE, OPEN_PATHS
    from hub.auth.roles import Permission

    app = create_app(HubSettings(data_dir=tmp_path / "hub"))
    try:
        open_paths, unguarded, checked = set(), [], 0
        for route in app.routes:
            if route.path == "/schema" or route.path.startswith("/schema/"):
                continue  # Litestar's own OpenAPI routes: checked over HTTP below
            for handler in getattr(route, "route_handlers", []):
                if handler.http_methods == {"OPTIONS"}:
                    continue  # Litestar's automatic OPTIONS answer (no body, auth skips it)
                checked += 1
                marks = [
                    getattr(getattr(guard, "func", guard), GUARD_ATTRIBUTE, None)
                    for guard in handler.resolve_guards()
                ]
                marks = [m for m in marks if m is not None]
                where = f"{sorted(handler.http_methods)} {route.path}"
                if not marks:
                    unguarded.append(where)
                elif "open" in marks:
                    assert len(marks) == 1, f"{where} is both open and guarded: {marks}"
                    open_paths.add(route.path)
                else:
                    for mark in marks:
                        assert mark and all(isinstance(p, Permission) for p in mark), where
        assert checked >= 20
        assert unguarded == [], f"handlers without a permission guard: {unguarded}"
        assert open_paths == OPEN
        assert set(OPEN_PATHS) == OPEN  # the auth middleware skips exactly these
    finally:
        app.state["services"].engine.dispose()


# -- no token, bad token -----------------------------------------------------------------

PROTECTED = [
    ("GET", "/api/v1/models"),
    ("GET", "/api/v1/agents"),
    ("GET", "/api/v1/audit"),
    ("POST", "/api/v1/audit/verify"),
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/keys/signing"),
    ("POST", "/api/v1/models/tiny/versions/1/stage"),
    ("GET", "/api/v1/models/tiny/versions/1/bundle"),
    ("POST", "/api/v1/agents/enrolment-tokens"),
    ("GET", "/schema/openapi.json"),
    ("GET", "/schema/openapi.yaml"),
    ("GET", "/schema/swagger"),
    ("GET", "/schema"),
]


def forged_alg_none(client: HubClient) -> str:
    """An unsigned copy of a real token claiming the admin role."""
    real = client.credentials.bearer() if client.credentials else ""
    header, payload, _ = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]

    def seg(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims["roles"] = ["admin"]
    return f"{seg({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{seg(claims)}."


def test_without_a_token_every_protected_endpoint_is_401_and_audited(
    hub: ServiceProcess, auditor: HubClient
) -> None:
    before = last_refusal_seq(auditor)
    for method, path in PROTECTED:
        body = {"stage": "production"} if path.endswith("/stage") else None
        response = httpx.request(method, f"{hub.url}{path}", json=body, timeout=10)
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
        assert response.headers.get("www-authenticate", "").startswith("Bearer")
        assert "openapi" not in response.text and "access_token" not in response.text
    refused = audit_entries(auditor, "access.refused", after=before)
    targets = {e["target"] for e in refused if e["actor"] == "anonymous"}
    assert {f"{m} {p}" for m, p in PROTECTED if not p.startswith("/schema")} <= targets
    assert all(e["outcome"] == "refused" and e["detail"]["status"] == 401 for e in refused)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "Bearer",
        "Basic YWRtaW46YWRtaW4=",
        "garbage",
        "FORGED",
    ],
)
def test_a_bad_token_is_401_and_audited(
    hub: ServiceProcess, auditor: HubClient, admin: HubClient, header: str
) -> None:
    if header == "FORGED":
        header = f"Bearer {forged_alg_none(admin)}"
    before = last_refusal_seq(auditor)
    response = httpx.get(f"{hub.url}/api/v1/users", headers={"authorization": header}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "AuthenticationError"
    refused = audit_entries(auditor, "access.refused", after=before)
    assert [(e["actor"], e["target"]) for e in refused] == [("anonymous", "GET /api/v1/users")]


def test_open_endpoints_answer_without_a_token(hub: ServiceProcess) -> None:
    assert httpx.get(f"{hub.url}/health", timeout=5).status_code == 200
    refresh = httpx.post(
        f"{hub.url}/api/v1/auth/refresh", json={"refresh_token": "nope"}, timeout=5
    )
    assert refresh.status_code == 401  # reached the handler, which refused the token


def test_sign_out_revokes_the_session_over_http(site: Site, hub: ServiceProcess) -> None:
    fatima = site.client(hub.url, "fatima")
    assert isinstance(fatima.credentials, UserCredentials)
    access, refresh = fatima.credentials.access_token, fatima.credentials.refresh_token
    headers = {"authorization": f"Bearer {access}"}
    out = httpx.post(
        f"{hub.url}/api/v1/auth/sign-out",
        json={"refresh_token": refresh},
        headers=headers,
        timeout=10,
    )
    assert out.status_code == 204
    assert httpx.get(f"{hub.url}/api/v1/auth/me", headers=headers, timeout=5).status_code == 401
    again = httpx.post(f"{hub.url}/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert again.status_code == 401
    fatima.close()


# -- roles -------------------------------------------------------------------------------


def new_user_body(username: str) -> dict[str, Any]:
    return {"username": username, "password": secrets.token_urlsafe(16), "roles": ["viewer"]}


def test_an_engineer_cannot_manage_users_or_approve(
    hub: ServiceProcess, engineer: HubClient, auditor: HubClient
) -> None:
    before = last_refusal_seq(auditor)
    created = httpx.post(
        f"{hub.url}/api/v1/users",
        json=new_user_body("eve"),
        headers=auth(engineer),
        timeout=10,
    )
    assert created.status_code == 403
    assert "users:manage" in created.json()["detail"]
    version = upload(engineer, "matrix")
    assert stage(engineer, "matrix", version, "staging").status_code == 200
    promoted = stage(engineer, "matrix", version, "production")
    assert promoted.status_code == 403
    assert "models:approve" in promoted.json()["detail"]
    assert engineer.get_model("matrix").versions[0].stage == "staging"
    assert engineer.get_model("matrix").versions[0].approvals == []
    refused = audit_entries(auditor, "access.refused", after=before)
    assert {(e["actor"], e["detail"]["status"]) for e in refused} == {("user:alice", 403)}
    assert {e["target"] for e in refused} == {
        "POST /api/v1/users",
        f"POST /api/v1/models/matrix/versions/{version}/stage",
    }


def test_an_auditor_reads_the_log_but_cannot_upload(
    hub: ServiceProcess, auditor: HubClient
) -> None:
    log = httpx.get(f"{hub.url}/api/v1/audit", headers=auth(auditor), timeout=10)
    assert log.status_code == 200 and log.json()
    response = httpx.post(
        f"{hub.url}/api/v1/models/audited/versions",
        files={"model": ("m.onnx", make_tiny_onnx())},
        headers=auth(auditor),
        timeout=30,
    )
    assert response.status_code == 403 and "models:write" in response.json()["detail"]
    users = httpx.get(f"{hub.url}/api/v1/users", headers=auth(auditor), timeout=10)
    assert users.status_code == 403


def test_an_admin_cannot_upload_or_move_models(
    hub: ServiceProcess, admin: HubClient, engineer: HubClient
) -> None:
    response = httpx.post(
        f"{hub.url}/api/v1/models/admins/versions",
        files={"model": ("m.onnx", make_tiny_onnx())},
        headers=auth(admin),
        timeout=30,
    )
    assert response.status_code == 403
    assert all(m.name != "admins" for m in engineer.list_models())
    version = upload(engineer, "admin-stage")
    assert stage(admin, "admin-stage", version, "staging").status_code == 403


def test_an_approver_cannot_upload_or_stage(
    hub: ServiceProcess, approver: HubClient, engineer: HubClient
) -> None:
    version = upload(engineer, "approver-stage")
    response = stage(approver, "approver-stage", version, "staging")
    assert response.status_code == 403 and "models:stage" in response.json()["detail"]
    assert engineer.get_model("approver-stage").versions[0].stage == "candidate"


# -- mass assignment ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"disabled": False},
        {"id": 1},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"password_hash": "scrypt$15$8$1$AAAA$AAAA"},
    ],
)
def test_creating_a_user_with_extra_fields_is_refused(
    hub: ServiceProcess, admin: HubClient, extra: dict[str, Any]
) -> None:
    name = f"mallory-{next(iter(extra))}".replace("_", "-")
    response = httpx.post(
        f"{hub.url}/api/v1/users",
        json={**new_user_body(name), **extra},
        headers=auth(admin),
        timeout=10,
    )
    assert response.status_code == 400, response.text
    users = httpx.get(f"{hub.url}/api/v1/users?limit=500", headers=auth(admin), timeout=10)
    assert name not in {u["username"] for u in users.json()}


def test_enrolment_takes_zone_and_group_only_from_the_token(
    hub: ServiceProcess, admin: HubClient, keys: Path
) -> None:
    token = admin.create_enrolment_token("ae-dxb", "edge")["token"]
    key = init_keypair(keys / "sneaky", "agent")
    body = _struct(enrolment_request(token, "sneaky", key))
    with http_from("127.0.0.2") as http:
        for extra in ({"zone": "ae-auh"}, {"group": "gpu"}, {"id": 1}, {"revoked_at": None}):
            response = http.post(f"{hub.url}/api/v1/agents/enrol", json={**body, **extra})
            assert response.status_code == 400, (extra, response.text)
        # nothing was enrolled and the token was not spent: the honest request works
        enrolled = http.post(f"{hub.url}/api/v1/agents/enrol", json=body)
    assert enrolled.status_code == 201, enrolled.text
    assert (enrolled.json()["zone"], enrolled.json()["group"]) == ("ae-dxb", "edge")
    assert [a.name for a in admin.list_agents()].count("sneaky") == 1


# -- enrolment tokens --------------------------------------------------------------------


def test_an_enrolment_token_works_once(hub: ServiceProcess, admin: HubClient, keys: Path) -> None:
    token = admin.create_enrolment_token("ae-dxb")["token"]
    first, second = init_keypair(keys / "once-1", "agent"), init_keypair(keys / "once-2", "agent")
    with http_from("127.0.0.2") as http:
        ok = http.post(
            f"{hub.url}/api/v1/agents/enrol",
            json=_struct(enrolment_request(token, "once-1", first)),
        )
        replay = http.post(
            f"{hub.url}/api/v1/agents/enrol",
            json=_struct(enrolment_request(token, "once-2", second)),
        )
    assert ok.status_code == 201
    assert replay.status_code == 401 and "used" in replay.json()["detail"]
    assert "once-2" not in {a.name for a in admin.list_agents()}


@pytest.mark.parametrize(
    "body, status",
    [
        ({"zone": "mars-1"}, 400),
        ({"zone": "ae-auh"}, 400),  # not configured on this hub
        ({"zone": "ae-dxb", "ttl_s": 1}, 400),
        ({"zone": "ae-dxb", "ttl_s": 10 * 24 * 3600}, 400),
        ({"zone": "ae-dxb", "group": "../etc"}, 400),
    ],
)
def test_bad_enrolment_tokens_cannot_be_created(
    hub: ServiceProcess, admin: HubClient, body: dict[str, Any], status: int
) -> None:
    response = httpx.post(
        f"{hub.url}/api/v1/agents/enrolment-tokens", json=body, headers=auth(admin), timeout=10
    )
    assert response.status_code == status, response.text
    assert "token" not in response.json()


def test_only_admins_create_enrolment_tokens(hub: ServiceProcess, engineer: HubClient) -> None:
    response = httpx.post(
        f"{hub.url}/api/v1/agents/enrolment-tokens",
        json={"zone": "ae-dxb"},
        headers=auth(engineer),
        timeout=10,
    )
    assert response.status_code == 403 and "agents:enrol" in response.json()["detail"]


# -- agents see only their own -----------------------------------------------------------


@pytest.fixture(scope="module")
def two_agents(hub: ServiceProcess, admin: HubClient, keys: Path) -> Iterator[tuple[Agent, Agent]]:
    a = enrol(hub.url, admin, "scope-a", keys)
    b = enrol(hub.url, admin, "scope-b", keys)
    yield a, b
    a.client.close()
    b.client.close()


def test_an_agent_sees_itself(hub: ServiceProcess, two_agents: tuple[Agent, Agent]) -> None:
    a, _ = two_agents
    me = httpx.get(f"{hub.url}/api/v1/agents/{a.id}", headers=auth(a.client), timeout=10)
    assert me.status_code == 200 and me.json()["name"] == "scope-a"
    assert a.client.assignments(a.id).models is not None
    beat = httpx.post(
        f"{hub.url}/api/v1/agents/{a.id}/heartbeat",
        json={"health": "ok", "detail": "fine"},
        headers=auth(a.client),
        timeout=10,
    )
    assert beat.status_code == 200 and beat.json()["detail"] == "fine"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/api/v1/agents/{b}", None),
        ("GET", "/api/v1/agents/{b}/assignments", None),
        ("POST", "/api/v1/agents/{b}/heartbeat", {"health": "failing", "detail": "pwned"}),
        ("GET", "/api/v1/agents/999999", None),
    ],
)
def test_another_agents_records_do_not_exist_for_an_agent(
    hub: ServiceProcess,
    admin: HubClient,
    two_agents: tuple[Agent, Agent],
    method: str,
    path: str,
    body: Any,
) -> None:
    a, b = two_agents
    response = httpx.request(
        method,
        f"{hub.url}{path.format(b=b.id)}",
        json=body,
        headers=auth(a.client),
        timeout=10,
    )
    assert response.status_code == 404, response.text
    assert "scope-b" not in response.text
    seen_by_admin = next(x for x in admin.list_agents() if x.id == b.id)
    assert seen_by_admin.health != "failing" and seen_by_admin.detail != "pwned"


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/v1/agents"),
        ("GET", "/api/v1/models"),
        ("GET", "/api/v1/models/tiny/versions/1"),
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/audit"),
        ("POST", "/api/v1/agents/enrolment-tokens"),
        ("POST", "/api/v1/agents/{b}/revoke"),
        ("POST", "/api/v1/models/tiny/versions/1/stage"),
    ],
)
def test_an_agent_holds_no_user_permission(
    hub: ServiceProcess, two_agents: tuple[Agent, Agent], method: str, path: str
) -> None:
    a, b = two_agents
    body = {"stage": "archived"} if path.endswith("/stage") else {"zone": "ae-dxb"}
    response = httpx.request(
        method,
        f"{hub.url}{path.format(b=b.id)}",
        json=body if method == "POST" else None,
        headers=auth(a.client),
        timeout=10,
    )
    assert response.status_code == 403, response.text
    assert "agent:scope-a may not do this" in response.json()["detail"]


def test_an_agent_downloads_no_plain_bundle_where_models_are_sealed(
    hub: ServiceProcess,
    engineer: HubClient,
    approver: HubClient,
    two_agents: tuple[Agent, Agent],
) -> None:
    a, _ = two_agents
    hidden = upload(engineer, "unassigned")  # a candidate: assigned to no one
    assigned = publish(engineer, approver, name="assigned")
    assert assigned.stage == "production"
    url = f"{hub.url}/api/v1/models/{{}}/versions/{{}}/bundle"
    for name, version in (("unassigned", hidden), ("ghost", 1)):
        refused = httpx.get(url.format(name, version), headers=auth(a.client), timeout=10)
        assert refused.status_code == 403
    sealed = httpx.get(url.format("assigned", assigned.version), headers=auth(a.client), timeout=30)
    assert sealed.status_code == 403  # finding 12: only the copy sealed to its own key
    assert "sealed" in sealed.json()["detail"] and "x-bundle-sha256" not in sealed.headers
    names = [m.name for m in a.client.assignments(a.id).models]
    assert "assigned" in names and "unassigned" not in names


# -- revocation --------------------------------------------------------------------------


def test_a_revoked_agent_is_locked_out_of_everything(
    hub: ServiceProcess, admin: HubClient, keys: Path
) -> None:
    c = enrol(hub.url, admin, "revoked-c", keys)
    own = f"{hub.url}/api/v1/agents/{c.id}"
    assert httpx.get(own, headers=auth(c.client), timeout=10).status_code == 200
    revoked = admin.revoke_agent(c.id)
    assert revoked.revoked_at is not None
    for method, path, body in [
        ("GET", own, None),
        ("GET", f"{own}/assignments", None),
        ("POST", f"{own}/heartbeat", {"health": "ok"}),
        ("GET", f"{hub.url}/api/v1/models/assigned/versions/1/bundle", None),
    ]:
        response = httpx.request(method, path, json=body, headers=auth(c.client), timeout=10)
        assert response.status_code == 401, (path, response.text)
    c.client.close()


def test_a_revoked_agents_name_can_be_enrolled_again(
    hub: ServiceProcess, admin: HubClient, keys: Path
) -> None:
    old = enrol(hub.url, admin, "reborn", keys)
    old.client.close()
    admin.revoke_agent(old.id)
    token = admin.create_enrolment_token("ae-dxb")["token"]
    key = init_keypair(keys / "reborn-2", "agent")
    response = httpx.post(
        f"{hub.url}/api/v1/agents/enrol",
        json=_struct(enrolment_request(token, "reborn", key)),
        timeout=10,
    )
    assert response.status_code == 201, response.text


# -- approvals (author never counts alone) -----------------------------------------------


def test_an_author_who_is_also_an_approver_needs_another_approver(
    hub: ServiceProcess, admin: HubClient, approver: HubClient, auditor: HubClient
) -> None:
    password = secrets.token_urlsafe(18)
    created = admin.create_user("dual", password, ["ml-engineer", "approver"])
    assert sorted(created["roles"]) == ["approver", "ml-engineer"]
    dual = signed_in(hub.url, "dual", password)
    version = upload(dual, "selfie")
    assert stage(dual, "selfie", version, "staging").status_code == 200
    alone = stage(dual, "selfie", version, "production")
    assert alone.status_code == 202
    assert (alone.json()["stage"], alone.json()["approvals"]) == ("staging", ["user:dual"])
    again = stage(dual, "selfie", version, "production")
    assert again.status_code == 202 and again.json()["approvals"] == ["user:dual"]
    done = stage(approver, "selfie", version, "production")
    assert done.status_code == 200
    assert (done.json()["stage"], done.json()["approvals"]) == (
        "production",
        ["user:dual", "user:omar"],
    )
    approvals = [
        e
        for e in audit_entries(auditor, "model.approve")
        if e["target"] == f"model:selfie/{version}"
    ]
    assert [e["actor"] for e in approvals] == ["user:dual", "user:omar"]
    changes = [
        e
        for e in audit_entries(auditor, "model.stage_change")
        if e["target"] == f"model:selfie/{version}" and e["detail"]["to"] == "production"
    ]
    assert [e["actor"] for e in changes] == ["user:omar"]
    dual.close()


# -- limits ------------------------------------------------------------------------------


def test_an_oversized_json_body_is_413(hub: ServiceProcess) -> None:
    body = b'{"username": "' + b"a" * (1 << 20) + b'", "password": "x"}'
    with http_from("127.0.0.3") as http:
        response = http.post(
            f"{hub.url}/api/v1/auth/sign-in",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413


def test_only_the_file_endpoints_take_bodies_past_the_json_limit(
    hub: ServiceProcess, site: Site
) -> None:
    """Issue 17 moved the upload limit from controller factories to a router around the
    file endpoints: a 2 MiB upload still reaches the registry (and is refused as no model),
    while a 2 MiB JSON body to the same controller's stage endpoint is 413."""
    with site.client(hub.url, "alice") as engineer:
        upload = httpx.post(
            f"{hub.url}/api/v1/models/big/versions",
            files={"model": ("m.onnx", b"\0" * (2 << 20))},
            headers=auth(engineer),
            timeout=60,
        )
        stage = httpx.post(
            f"{hub.url}/api/v1/models/big/versions/1/stage",
            content=b'{"stage": "' + b"s" * (2 << 20) + b'"}',
            headers={**auth(engineer), "content-type": "application/json"},
            timeout=60,
        )
    assert upload.status_code == 400 and "not a loadable ONNX model" in upload.text
    assert stage.status_code == 413


def test_sign_in_is_throttled_per_address(hub: ServiceProcess, site: Site) -> None:
    """Spends 127.0.0.4's budget for a minute; the other tests come from other addresses."""
    url = f"{hub.url}/api/v1/auth/sign-in"
    wrong = {"username": "admin", "password": "not-the-password"}
    with http_from("127.0.0.4") as http:
        # a different made-up name each time: the per-account backoff never starts
        answers = [
            http.post(url, json={**wrong, "username": f"guess-{i}"}).status_code for i in range(30)
        ]
        assert answers == [401] * 30
        blocked = http.post(url, json=wrong)
        assert blocked.status_code == 429
        right = {"username": "admin", "password": site.passwords["admin"]}
        assert http.post(url, json=right).status_code == 429  # even the right password
        assert http.post(f"{hub.url}/api/v1/agents/enrol", json={}).status_code == 429
    with http_from("127.0.0.5") as other:  # another address is not affected
        assert other.post(url, json=right).status_code == 200


# -- hubs of their own: residency policy, two approvals ----------------------------------


@pytest.fixture(scope="module")
def policy_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, ServiceProcess]]:
    root = tmp_path_factory.mktemp("residency")
    site = bootstrap_site(root, tls=False)
    policy = root / "residency.toml"
    policy.write_text(POLICY)
    plain_targets = {"APPLIANCE_ENCRYPT_MODELS": "false"}  # agents fetch plain bundles
    with running_hub(site, "--residency-policy", str(policy), env=plain_targets) as proc:
        yield site, proc


def test_residency_refuses_a_model_to_an_agent_in_another_zone(
    policy_hub: tuple[Site, ServiceProcess], tmp_path: Path
) -> None:
    site, hub = policy_hub
    with ExitStack() as stack:
        admin = stack.enter_context(site.client(hub.url, "admin"))
        engineer = stack.enter_context(site.client(hub.url, "alice"))
        approver = stack.enter_context(site.client(hub.url, "omar"))
        auditor = stack.enter_context(site.client(hub.url, "sara"))
        info = engineer.upload_model("auh-only", make_tiny_onnx(), zones=["ae-auh"])
        assert info.zones == ["ae-auh"]
        engineer.change_stage("auh-only", info.version, "staging")
        assert approver.change_stage("auh-only", info.version, "production").stage == "production"

        dxb = enrol(hub.url, admin, "edge-dxb", tmp_path, zone="ae-dxb")
        auh = enrol(hub.url, admin, "edge-auh", tmp_path, zone="ae-auh")
        stack.enter_context(dxb.client)
        stack.enter_context(auh.client)
        assert (dxb.info.zone, auh.info.zone) == ("ae-dxb", "ae-auh")

        # the ae-dxb agent is told why, not left to wonder
        seen = dxb.client.assignments(dxb.id)
        assert [m.name for m in seen.models] == []
        [refused] = seen.refused
        assert (refused.name, refused.version, refused.rule) == (
            "auh-only",
            info.version,
            "deploy.ae-auh",
        )
        bundle = f"{hub.url}/api/v1/models/auh-only/versions/{info.version}/bundle"
        denied = httpx.get(bundle, headers=auth(dxb.client), timeout=30)
        assert denied.status_code == 403
        assert denied.json()["rule"] == "deploy.ae-auh"
        assert "deploy.ae-auh" in denied.json()["detail"]
        assert denied.headers.get("x-bundle-sha256") is None

        # the ae-auh agent gets it
        mine = auh.client.assignments(auh.id)
        assert [m.name for m in mine.models] == ["auh-only"] and mine.refused == []
        fetched = httpx.get(bundle, headers=auth(auh.client), timeout=30)
        assert fetched.status_code == 200
        assert fetched.headers["x-bundle-sha256"] == info.bundle_sha256

        decisions = audit_entries(auditor, "residency.decision")
        outcomes = {(e["actor"], e["outcome"], e["detail"]["rule"]) for e in decisions}
        assert outcomes == {
            ("agent:edge-dxb", "refused", "deploy.ae-auh"),
            ("agent:edge-auh", "allowed", "deploy.ae-auh"),
        }
        targets = {e["target"] for e in decisions}
        assert targets == {
            f"model:auh-only/{info.version} to agent:edge-dxb",
            f"model:auh-only/{info.version} to agent:edge-auh",
        }


def test_a_model_cannot_be_uploaded_for_an_unknown_zone(
    policy_hub: tuple[Site, ServiceProcess],
) -> None:
    site, hub = policy_hub
    with site.client(hub.url, "alice") as engineer:
        response = httpx.post(
            f"{hub.url}/api/v1/models/mars/versions",
            files={"model": ("m.onnx", make_tiny_onnx())},
            data={"metadata": json.dumps({"zones": ["ae-auh", "mars-1"]})},
            headers=auth(engineer),
            timeout=30,
        )
        assert response.status_code == 400 and "mars-1" in response.json()["detail"]
        assert all(m.name != "mars" for m in engineer.list_models())


@pytest.fixture(scope="module")
def two_key_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, ServiceProcess]]:
    site = bootstrap_site(tmp_path_factory.mktemp("two-keys"), tls=False)
    small = {"APPLIANCE_MAX_UPLOAD_MB": "1"}
    with running_hub(site, "--approvals-required", "2", env=small) as proc:
        yield site, proc


def test_two_approvals_need_two_distinct_approvers(
    two_key_hub: tuple[Site, ServiceProcess],
) -> None:
    site, hub = two_key_hub
    with ExitStack() as stack:
        engineer = stack.enter_context(site.client(hub.url, "alice"))
        omar = stack.enter_context(site.client(hub.url, "omar"))
        fatima = stack.enter_context(site.client(hub.url, "fatima"))
        version = upload(engineer, "two-keys")
        assert stage(engineer, "two-keys", version, "staging").status_code == 200
        first = stage(omar, "two-keys", version, "production")
        assert first.status_code == 202
        assert (first.json()["stage"], first.json()["approvals"]) == ("staging", ["user:omar"])
        twice = stage(omar, "two-keys", version, "production")
        assert twice.status_code == 202
        assert (twice.json()["stage"], twice.json()["approvals"]) == ("staging", ["user:omar"])
        assert engineer.list_models()[0].production_version is None
        second = stage(fatima, "two-keys", version, "production")
        assert second.status_code == 200
        assert (second.json()["stage"], second.json()["approvals"]) == (
            "production",
            ["user:omar", "user:fatima"],
        )
        assert engineer.get_model("two-keys").versions[0].stage == "production"


def test_uploads_over_the_configured_limit_are_413(
    two_key_hub: tuple[Site, ServiceProcess],
) -> None:
    site, hub = two_key_hub
    with site.client(hub.url, "alice") as engineer:
        response = httpx.post(
            f"{hub.url}/api/v1/models/huge/versions",
            files={"model": ("m.onnx", b"\0" * (2 << 20))},
            headers=auth(engineer),
            timeout=30,
        )
    assert response.status_code == 413, response.text
