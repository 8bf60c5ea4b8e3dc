"""Inference credentials as the hub issues them: a bearer key, or a client certificate
from the site CA for a signing request, both carried to agents as grants."""

from __future__ import annotations

import hashlib
import ssl

import pytest

from appliance.errors import ConflictError, InvalidInputError
from appliance.security.keys import init_keypair
from appliance.security.tls import init_ca, new_signing_request
from appliance.wire.fleet import NewInferenceKey
from hub.access.service import InferenceKeys
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.fleet.certificates import SiteCertificates
from hub.residency.policy import ResidencyPolicy

ADMIN = Principal(kind="user", id=1, name="admin", roles=frozenset(), permissions=frozenset())


def _keys(engine, tmp_path, ca: bool) -> InferenceKeys:
    site = SiteCertificates(init_ca(tmp_path / "ca") if ca else None)
    audit = AuditLog(init_keypair(tmp_path / "keys"))
    return InferenceKeys(engine, audit, ResidencyPolicy.single_zone("ae-dxb"), site)


def test_a_signing_request_gets_a_client_certificate_and_a_certificate_grant(engine, tmp_path):
    keys = _keys(engine, tmp_path, ca=True)
    csr = new_signing_request(tmp_path / "app", "clinic-app").decode()
    info = keys.create(
        NewInferenceKey(name="clinic-app", zone="ae-dxb", models=["tiny"], csr=csr), ADMIN
    )
    assert info.key is None and info.certificate is not None
    bearer = keys.create(NewInferenceKey(name="other-app", zone="ae-dxb"), ADMIN)
    assert bearer.key is not None and bearer.certificate is None
    grants = keys.grants_for("ae-dxb", "default")
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(info.certificate)).hexdigest()
    assert grants[info.key_id].certificate and grants[info.key_id].sha256 == digest
    assert grants[info.key_id].models == ["tiny"]
    assert not grants[bearer.key_id].certificate


def test_no_site_ca_or_a_bad_request_is_a_clear_refusal(engine, tmp_path):
    csr = new_signing_request(tmp_path / "app", "clinic-app").decode()
    with pytest.raises(ConflictError, match="no site CA"):
        _keys(engine, tmp_path, ca=False).create(
            NewInferenceKey(name="clinic-app", zone="ae-dxb", csr=csr), ADMIN
        )
    with pytest.raises(InvalidInputError, match=r"csr: .*not a PEM CSR"):
        _keys(engine, tmp_path, ca=True).create(
            NewInferenceKey(name="clinic-app", zone="ae-dxb", csr="not a request"), ADMIN
        )
