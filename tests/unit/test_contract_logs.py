"""The one JSON log line format (app/contract/logs.py) that central and the edge both write."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.contract.logs import JsonFormatter

FIXED = ("ts", "level", "logger", "msg", "service")


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True).filter(
            lambda k: (
                k not in vars(logging.LogRecord("", 0, "", 0, "", (), None))
                and k not in ("message", "asctime")
            )
        ),
        st.none() | st.integers() | st.text() | st.lists(st.text(), max_size=3),
        max_size=6,
    ),
    st.text(),
)
def test_every_line_is_one_json_object_with_its_fields(extra: dict[str, Any], msg: str) -> None:
    record = logging.LogRecord("app.edge.x", logging.WARNING, "f.py", 1, "%s", (msg,), None)
    record.__dict__.update(extra)
    line = JsonFormatter(service="parking-edge").format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["msg"], parsed["level"], parsed["logger"]) == (msg, "warning", "app.edge.x")
    for key, value in extra.items():
        if key not in FIXED:
            assert parsed[key] == value, key
    assert parsed["service"] == "parking-edge", "a fixed field wins over an extra"


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))  # up to 2100
def test_the_timestamp_is_iso_8601_utc_to_the_millisecond(created: float) -> None:
    record = logging.LogRecord("x", logging.INFO, "f.py", 1, "m", (), None)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0  # as logging computes it
    ts = json.loads(JsonFormatter(service="s").format(record))["ts"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", ts), ts
    parsed = datetime.fromisoformat(ts)
    assert parsed.utcoffset() == timedelta(0)
    assert 0 <= created - parsed.timestamp() < 0.001 + 1e-6  # truncated to the millisecond


def test_a_traceback_is_a_field_of_the_same_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "f.py", 1, "failed", (), sys.exc_info())
    line = JsonFormatter(service="s").format(record)
    assert "\n" not in line, "the traceback stays on the record's one line"
    parsed = json.loads(line)
    assert parsed["msg"] == "failed"
    assert "ValueError: boom" in parsed["exc"]
