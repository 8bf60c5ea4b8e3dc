"""The operator's Textual console (filled by the console issue)."""
