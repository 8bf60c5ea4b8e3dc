"""The feature store: versioned definitions, a Parquet offline store read by DuckDB,
point-in-time correct training sets and an in-memory online store.

See ``docs/features.md`` for the decisions behind it.
"""
