"""Pure formatting of hub records for the console: ``common`` (times, sizes, states,
tables), and one module per screen's subject (``agent``, ``drift``, ``releases``,
``training``). No Textual here: each function takes records and returns text or series,
so the tests check them without a terminal."""
