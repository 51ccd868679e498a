"""Signatures checked by an independent implementation: the ``standardwebhooks`` package
from PyPI verifies what ``ttc_core.webhooks.signing`` produces."""

from __future__ import annotations

import base64
import datetime as dt
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ttc_core.webhooks.signing import generate_secret, secret_key, sign, webhook_headers

BODY = '{"type":"job.succeeded","timestamp":"2026-11-29T05:00:00Z","data":{"job_id":"j1"}}'


def test_secrets_are_whsec_base64_of_at_least_24_random_bytes() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
        assert len(secret_key(secret)) >= 24


@pytest.mark.parametrize(
    "bad", ["nope", "whsec_!!!", "whsec_" + base64.b64encode(b"x" * 8).decode()]
)
def test_malformed_secrets_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        secret_key(bad)


def test_standardwebhooks_verifies_our_headers() -> None:
    secret = generate_secret()
    now = int(time.time())
    headers = webhook_headers([secret], "msg_1", now, BODY)
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "job.succeeded",
        "timestamp": "2026-11-29T05:00:00Z",
        "data": {"job_id": "j1"},
    }
    # Same bytes as the reference implementation's own signer.
    reference = Webhook(secret).sign("msg_1", dt.datetime.fromtimestamp(now, dt.UTC), BODY)
    assert sign(secret, "msg_1", now, BODY) == reference


def test_both_secrets_verify_during_a_rotation_and_tampering_fails() -> None:
    old, new = generate_secret(), generate_secret()
    now = int(time.time())
    headers = webhook_headers([new, old], "msg_2", now, BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(BODY.replace("j1", "j2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(BODY, {**headers, "webhook-id": "msg_3"})
