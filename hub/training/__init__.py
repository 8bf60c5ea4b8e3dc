"""Training: the job queue, leases, gate and schedules on the hub, and the MLP they train.

Jobs are worked by GPU workers (:mod:`hub.worker`); ``appliance model train``
still trains :func:`hub.training.tabular.train_tabular` in the calling process.
"""
