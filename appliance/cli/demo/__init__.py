"""``appliance demo``: the whole loop on one machine, with real processes."""
