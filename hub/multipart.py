"""Reading the parts of a multipart form (model uploads, data files, job results)."""

from __future__ import annotations

import json
from typing import IO, Annotated, Any

from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body

from appliance.errors import InvalidInputError, nested_too_deeply

Multipart = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]


def _file_part(data: dict[str, Any], field: str, *, required: bool) -> UploadFile | None:
    value = data.get(field)
    if value is None:
        if required:
            raise InvalidInputError(f"{field}: missing file part {field!r} in the multipart form")
        return None
    if not isinstance(value, UploadFile):
        raise InvalidInputError(f"{field}: expected a file part, got a text field")
    return value


def upload_bytes(data: dict[str, Any], field: str, *, required: bool) -> bytes | None:
    """A file part's content; a missing or empty required part is the caller's error."""
    value = _file_part(data, field, required=required)
    if value is None:
        return None
    content = value.file.read()
    if required and not content:
        raise InvalidInputError(f"{field}: the uploaded file is empty")
    return content


def upload_stream(data: dict[str, Any], field: str) -> IO[bytes]:
    """A required file part as the stream it was spooled to (to disk past a megabyte), for
    parts too large to hold in memory (models)."""
    value = _file_part(data, field, required=True)
    assert value is not None
    stream: IO[bytes] = value.file
    if not stream.read(1):
        raise InvalidInputError(f"{field}: the uploaded file is empty")
    stream.seek(0)
    return stream


def text(data: dict[str, Any], field: str) -> str | None:
    """A text part (or a small file part read as UTF-8)."""
    value = data.get(field)
    if isinstance(value, UploadFile):
        return value.file.read().decode("utf-8", "replace")
    return None if value is None else str(value)


def filename(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    return value.filename if isinstance(value, UploadFile) else field


def json_object(data: dict[str, Any], field: str) -> dict[str, Any]:
    """A part holding a JSON object; a missing part is an empty object."""
    raw = text(data, field)
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{field}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise nested_too_deeply(field) from exc
    if not isinstance(parsed, dict):
        raise InvalidInputError(f"{field}: must be a JSON object")
    return parsed
