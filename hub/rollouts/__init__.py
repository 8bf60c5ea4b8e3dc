"""Rollouts: a new version reaches a group ring by ring, each ring held to health gates."""
