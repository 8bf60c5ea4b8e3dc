"""GPU workers: claim training jobs from the hub, train, evaluate, report."""
