"""The hub: model registry, fleet records and (in later issues) the rest of the loop."""
