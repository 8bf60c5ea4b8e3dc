"""Residency zones as policy: which data may go where, decided at one choke point."""
