from __future__ import annotations

import pytest

from app.central.errors import RateLimited
from app.central.ratelimit import TokenBucket


def test_bucket_allows_burst_then_refuses_with_retry_after_then_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(rate_per_s=1.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        bucket.take("cam", "camera")
    with pytest.raises(RateLimited) as info:
        bucket.take("cam", "camera")
    assert info.value.retry_after_s == 1
    bucket.take("other", "camera")  # keys are independent
    now[0] = 1.0
    bucket.take("cam", "camera")
