"""Inference keys: the credentials client applications use on agents' data plane."""
