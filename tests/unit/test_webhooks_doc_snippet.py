"""The verification snippet of ``docs/webhooks.md``, run as it is printed there."""

from __future__ import annotations

import pytest

from tests.support.webhook_receiver import documented_verify

verify = documented_verify()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_documented_snippet_accepts_the_standard_webhooks_test_vector() -> None:
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    verify(SECRET, headers, body, now=1614265330)
    with pytest.raises(ValueError, match="signature"):
        verify(SECRET, headers, body + b"x", now=1614265330)
    with pytest.raises(ValueError, match="timestamp"):
        verify(SECRET, headers, body)
