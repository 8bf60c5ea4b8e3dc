"""The offline installer: signed archives of wheels, units, templates and playbooks.

``appliance-build`` (see :mod:`appliance.cli.release.cli`) resolves each role's
requirement set, collects every wheel, writes exact lock files with hashes and
packs them with the systemd units, configuration templates and the Ansible tree
into ``appliance-hub-<version>.tar`` and ``appliance-agent-<version>.tar``, with
``SHA256SUMS`` and an Ed25519 signature over it (:mod:`appliance.cli.release.build`).
:mod:`appliance.security.release_archives` checks an archive against a pinned public key;
it needs only the standard library and ``cryptography`` so the playbooks can run
it on the control node. ``packaging/README.md`` is the operator's guide.
"""
