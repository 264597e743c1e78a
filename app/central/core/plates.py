"""A plate as an operator types it: sessions, lists and erasure requests take the same text."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

PlateText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_upper=True,
        min_length=2,
        max_length=16,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 .\-/]*[A-Za-z0-9]$",  # upper-cased after
    ),
]
