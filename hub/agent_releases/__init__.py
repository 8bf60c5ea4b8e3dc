"""Agent releases the hub holds: signed agent archives, checked against the pinned release
key when uploaded, for agents to upgrade to."""
