"""A row-per-record table that keeps the operator's place across refreshes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

Cell = str | Text
Row = tuple[str, Sequence[Cell]]
"""(key, cells): the key names the record (an id) and survives refreshes."""


def selected_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the cursor; None for an empty table."""
    if table.row_count == 0:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


class RecordTable(DataTable[Cell]):
    """Zebra-striped, row cursor, columns given up front; :meth:`refill` keeps the cursor."""

    def __init__(self, columns: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.add_columns(*columns)

    @property
    def selected(self) -> str | None:
        return selected_key(self)

    def select(self, key: str) -> bool:
        """Put the cursor on the row keyed ``key``; False if there is none."""
        if key not in self.rows:
            return False
        self.move_cursor(row=self.get_row_index(RowKey(key)))
        return True

    def refill(self, rows: Iterable[Row]) -> None:
        """Replace every row; the cursor stays on the same record when it is still there."""
        keep = self.selected
        row = self.cursor_row
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        kept = keep is not None and self.select(keep)
        if not kept and self.row_count:
            self.move_cursor(row=min(row, self.row_count - 1))
