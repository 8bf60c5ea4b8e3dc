"""Agent upgrades: an agent group taken to an agent release the hub holds, ring by ring,
each ring held until every agent of it says it runs the release, healthy, for a soak;
an agent that fails its upgrade (its host rolled it back) halts the rest."""
