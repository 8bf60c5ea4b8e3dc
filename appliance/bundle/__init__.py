"""The signed model bundle: its archive format, its manifest and its tensors."""
