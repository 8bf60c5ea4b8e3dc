"""Signed updates: the TUF repository the hub publishes and agents verify."""
