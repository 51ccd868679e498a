"""One HTTP attempt to a checked address: no second resolution, no redirects, no proxy.

The request goes to the IP address the SSRF guard approved, with the URL's host name in
the ``Host`` header and, for https, as the TLS server name (SNI) and the name the
certificate is verified against. A fresh client per attempt: pooled connections are
keyed by address, and a TLS connection opened for one host name must never carry a
request for another. ``trust_env=False``: a proxy from the environment would resolve the
name again on its side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from ttc_core.webhooks.ssrf import WebhookTarget

USER_AGENT = "ttc-webhooks/0.1"


@dataclass(frozen=True)
class SendResult:
    #: The receiver's status code, or None when no response came (timeout, refused).
    status_code: int | None
    latency_ms: float
    #: Why the attempt failed, or None on a 2xx.
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def pinned_request(target: WebhookTarget, headers: dict[str, str], body: bytes) -> httpx.Request:
    """The POST to ``target.address`` that looks to the receiver like one to its URL."""
    url = target.url
    request = httpx.Request(
        "POST",
        httpx.URL(scheme=url.scheme, host=str(target.address), port=url.port),
        headers={
            "host": url.host_header,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **headers,
        },
        content=body,
    )
    # The path and query as given (httpx.URL would re-encode them).
    request.url = request.url.copy_with(raw_path=url.target.encode("ascii", "strict"))
    if url.scheme == "https" and url.ip is None:
        request.extensions["sni_hostname"] = url.host
    return request


def send(
    target: WebhookTarget,
    headers: dict[str, str],
    body: bytes,
    *,
    timeout_s: float,
    transport: httpx.BaseTransport | None = None,
) -> SendResult:
    """POST once; only a 2xx is a success (a 3xx is a failure and is not followed)."""
    request = pinned_request(target, headers, body)
    started = time.perf_counter()
    try:
        with httpx.Client(
            transport=transport or httpx.HTTPTransport(retries=0),
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
        ) as client:
            response = client.send(request, stream=True)  # the body is never read
            response.close()
    except httpx.TimeoutException as exc:
        return SendResult(
            None, _ms(started), f"timeout after {timeout_s:g}s ({type(exc).__name__})"
        )
    except httpx.HTTPError as exc:
        return SendResult(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
    latency = _ms(started)
    code = response.status_code
    if 200 <= code < 300:
        return SendResult(code, latency, None)
    if 300 <= code < 400:
        location = response.headers.get("location", "")[:200]
        return SendResult(code, latency, f"redirect to {location!r} not followed")
    return SendResult(code, latency, f"receiver answered {code}")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
