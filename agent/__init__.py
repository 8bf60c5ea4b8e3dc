"""The edge agent: Open Inference Protocol v2 serving, model sync and atomic swap."""
