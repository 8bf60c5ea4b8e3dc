"""HTTP clients of the hub: the general client and the training worker's."""
