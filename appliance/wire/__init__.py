"""Every wire schema the hub, agents, workers and console exchange (msgspec structs)."""
