"""The operator's Textual console over the hub's API (``appliance tui``).

Layout: ``app.py`` (thin App), ``screens/`` (sign-in, main), ``widgets/`` (a
pane per area: fleet, models, audit, training, rollouts & A/B, drift; the list,
follow, switch, table and chart pieces they share), ``dialogs/`` (confirmations,
forms, an agent's details, a download with its progress), ``hub.py`` (the calls
the console makes, and signing in), ``records.py`` (typed views of the hub's dict
answers), ``format/`` (pure formatting of hub records).
"""

from tui.app import ConsoleApp
from tui.hub import Connector, HubApi, HubConnector

__all__ = ["Connector", "ConsoleApp", "HubApi", "HubConnector"]
