"""The trust (update) layer shared by hub and agents: TUF names, paths and the offline bundle.

The hub publishes what agents may install as TUF metadata (python-tuf's
``tuf.api.metadata``); agents verify it with ``tuf.ngclient.Updater``. This
package holds only what both sides must agree on: how roles and target paths
are named, what a target's ``custom`` field says, and the offline bundle file.
"""
