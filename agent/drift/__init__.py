"""Drift on the device: a window of recent inputs tested against the bundle's reference sample.

Only statistics leave the box (per-feature p-values and distances, window size
and time span, the verdict); the inputs themselves stay in memory here.
"""
