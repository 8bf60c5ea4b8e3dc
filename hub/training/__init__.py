"""Training: built-in trainers that produce ONNX models with metrics and lineage.

Today a trainer runs in the calling process on the CPU; the training-jobs issue
runs the same :func:`hub.training.tabular.train_tabular` inside GPU workers.
"""
