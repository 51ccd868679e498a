"""Another tenant's job, node or event is a 404 on every route; no key, a revoked key or a
mistyped key is a 401; an admin key sees every tenant."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiStack, job_body
from tests.helpers import wait_until
from ttc_core.service.auth import generate_key

pytestmark = pytest.mark.integration

#: Bodies for the job routes that take one (the others get none).
BODIES: dict[str, dict[str, Any]] = {"/expand": {"k": 1}}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def _job_routes(stack: ApiStack) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every operation on a job (or under one), read from the OpenAPI document, so that a
    route added later is covered too."""
    document = httpx.get(stack.url + "/openapi.json", timeout=30).json()
    routes = []
    for path, item in document["paths"].items():
        if "{job_id}" not in path:
            continue
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = next((b for suffix, b in BODIES.items() if path.endswith(suffix)), None)
            if "requestBody" in operation and body is None:
                body = {}
            routes.append((method.upper(), path, body))
    return routes


def _fill(path: str, job_id: str, node_id: str) -> str:
    url = path.replace("{job_id}", job_id).replace("{node_id}", node_id)
    # Any other id in the path (a delivery, say) gets a made-up value.
    while "{" in url:
        start = url.index("{")
        url = url[:start] + UNKNOWN_ID + url[url.index("}", start) + 1 :]
    return url


def _call(client: httpx.Client, method: str, url: str, body: dict[str, Any] | None) -> Any:
    return (
        client.request(method, url, json=body) if body is not None else client.request(method, url)
    )


def _assert_problem(resp: httpx.Response, status: int, what: str) -> None:
    assert resp.status_code == status, f"{what}: {resp.status_code} {resp.text[:300]}"
    assert resp.headers["content-type"].startswith("application/problem+json"), what
    assert resp.json()["status"] == status


def test_every_job_route_is_404_for_another_tenant(api_stack: ApiStack) -> None:
    _, alice, _ = api_stack.tenant_client()
    _, bob, _ = api_stack.tenant_client()
    created = alice.post("/v1/jobs", json=job_body())
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    job = alice.get(f"/v1/jobs/{job_id}").json()
    root = job["root_node_id"]

    routes = _job_routes(api_stack)
    paths = {path for _, path, _ in routes}
    # The routes this test is about must be among them (the document is complete).
    for expected in (
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/pause",
        "/v1/jobs/{job_id}/resume",
        "/v1/jobs/{job_id}/events",
        "/v1/jobs/{job_id}/nodes",
        "/v1/jobs/{job_id}/nodes/{node_id}",
        "/v1/jobs/{job_id}/nodes/{node_id}/prune",
        "/v1/jobs/{job_id}/nodes/{node_id}/expand",
    ):
        assert expected in paths
    for method, path, body in routes:
        url = _fill(path, job_id, root)
        resp = _call(bob, method, url, body)
        _assert_problem(resp, 404, f"{method} {path} with another tenant's key")
        # The same answer as for a job that does not exist: nothing confirms it exists.
        missing = _call(bob, method, _fill(path, UNKNOWN_ID, root), body)
        assert missing.status_code == 404
        assert resp.json()["title"] == missing.json()["title"]
    # Server-Sent Events too.
    with bob.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}
    ) as stream:
        assert stream.status_code == 404

    # Bob's listings do not show it, with or without a status filter.
    assert bob.get("/v1/jobs").json()["data"] == []
    assert bob.get("/v1/jobs", params={"status": job["status"]}).json()["data"] == []
    # And none of Bob's attempts touched it: still Alice's, not cancelled or paused, with
    # no event from Bob's actions.
    final = wait_until(
        lambda: (j := alice.get(f"/v1/jobs/{job_id}").json())["status"] == "succeeded" and j,
        timeout=90,
    )
    assert final["id"] == job_id
    kinds = [e["kind"] for e in alice.get(f"/v1/jobs/{job_id}/events").json()["data"]]
    assert "node_pruned" not in kinds and "node_expand_requested" not in kinds
    assert [j["id"] for j in alice.get("/v1/jobs").json()["data"]] == [job_id]


def test_no_key_revoked_key_and_mistyped_key_are_401(api_stack: ApiStack) -> None:
    tenant, alice, record = api_stack.tenant_client()
    job_id = alice.post("/v1/jobs", json=job_body()).json()["id"]
    root = alice.get(f"/v1/jobs/{job_id}").json()["root_node_id"]
    key = record["key"]
    # One character changed: the checksum fails (no database lookup needed).
    flipped = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    # Well-formed with a valid checksum, but never issued.
    unknown = generate_key()
    revoked_tenant, revoked_key = api_stack.new_key()
    assert api_stack.admin.delete(f"/v1/admin/keys/{_key_id(api_stack, revoked_tenant)}").is_success

    callers = {
        "no key": api_stack.client(),
        "revoked key": api_stack.client(revoked_key),
        "bad checksum": api_stack.client(flipped),
        "unknown key": api_stack.client(unknown),
        "not a ttc key": api_stack.client("hunter2"),
        "bad X-API-Key": api_stack.client(None, **{"X-API-Key": flipped}),
    }
    routes = [("POST", "/v1/jobs", job_body()), ("GET", "/v1/jobs", None)]
    routes += [(m, _fill(p, job_id, root), b) for m, p, b in _job_routes(api_stack)]
    routes += [("GET", "/v1/admin/keys", None), ("POST", "/v1/admin/keys", {"tenant": "x"})]
    for what, client in callers.items():
        for method, url, body in routes:
            resp = _call(client, method, url, body)
            _assert_problem(resp, 401, f"{method} {url} with {what}")
            assert resp.headers["www-authenticate"].startswith("Bearer")
    # Nothing was created by any of them.
    assert [j["id"] for j in alice.get("/v1/jobs").json()["data"]] == [job_id]
    assert tenant != revoked_tenant


def _key_id(stack: ApiStack, tenant: str) -> str:
    keys = stack.admin.get("/v1/admin/keys", params={"tenant": tenant}).json()["data"]
    assert len(keys) == 1
    return str(keys[0]["id"])


def test_every_way_to_send_a_key_works(api_stack: ApiStack) -> None:
    _, key = api_stack.new_key()
    job_id = api_stack.client(key).post("/v1/jobs", json=job_body()).json()["id"]
    by_header = api_stack.client(None, **{"X-API-Key": key})
    assert by_header.get(f"/v1/jobs/{job_id}").status_code == 200
    # The UI's login form turns the key into a session cookie, which the API takes too.
    with httpx.Client(base_url=api_stack.url, timeout=30) as by_cookie:
        form = by_cookie.get("/ui/login").text
        match = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
        assert match, form
        login = by_cookie.post(
            "/ui/login",
            data={"key": key, "csrf": match.group(1)},
            headers={"Origin": api_stack.url},
        )
        assert login.status_code == 303 and "ttc_session" in by_cookie.cookies, login.text
        assert by_cookie.get(f"/v1/jobs/{job_id}").status_code == 200
        # The raw key in a cookie is no login.
        raw = httpx.get(
            f"{api_stack.url}/v1/jobs/{job_id}", cookies={"ttc_session": key}, timeout=30
        )
        assert raw.status_code == 401


def test_admin_sees_every_tenant_and_submits_for_one(api_stack: ApiStack) -> None:
    alice_tenant, alice, _ = api_stack.tenant_client()
    _, bob, _ = api_stack.tenant_client()
    a = alice.post("/v1/jobs", json=job_body()).json()["id"]
    b = bob.post("/v1/jobs", json=job_body()).json()["id"]
    seen = {j["id"] for j in api_stack.admin.get("/v1/jobs", params={"limit": 200}).json()["data"]}
    assert {a, b} <= seen
    for job_id in (a, b):
        assert api_stack.admin.get(f"/v1/jobs/{job_id}").status_code == 200
        root = api_stack.admin.get(f"/v1/jobs/{job_id}").json()["root_node_id"]
        assert api_stack.admin.get(f"/v1/jobs/{job_id}/nodes/{root}").status_code == 200
        assert api_stack.admin.get(f"/v1/jobs/{job_id}/events").status_code == 200

    # An admin key puts a job in the tenant it names; the tenant then sees it.
    made = api_stack.admin.post("/v1/jobs", json=job_body(tenant=alice_tenant))
    assert made.status_code == 202, made.text
    assert alice.get(f"/v1/jobs/{made.json()['id']}").status_code == 200
    assert bob.get(f"/v1/jobs/{made.json()['id']}").status_code == 404
    # A tenant that does not exist is a 422 naming the field.
    resp = api_stack.admin.post("/v1/jobs", json=job_body(tenant="no-such-tenant"))
    _assert_problem(resp, 422, "unknown tenant")
    assert resp.json()["field"] == "tenant"
    # A tenant key may not choose another tenant.
    resp = bob.post("/v1/jobs", json=job_body(tenant=alice_tenant))
    _assert_problem(resp, 422, "tenant key naming another tenant")
    assert resp.json()["field"] == "tenant"


def test_admin_key_routes(api_stack: ApiStack) -> None:
    tenant, alice, record = api_stack.tenant_client()
    # A tenant key may not manage keys.
    for method, url, body in (
        ("GET", "/v1/admin/keys", None),
        ("POST", "/v1/admin/keys", {"tenant": tenant}),
        ("DELETE", f"/v1/admin/keys/{record['id']}", None),
    ):
        _assert_problem(_call(alice, method, url, body), 403, f"{method} {url} as a tenant")
    # Listing shows the key without its secret.
    listed = api_stack.admin.get("/v1/admin/keys", params={"tenant": tenant}).json()["data"]
    assert [k["id"] for k in listed] == [record["id"]]
    assert "key" not in listed[0] and record["key"] not in str(listed)
    assert record["key"].startswith(listed[0]["prefix"])
    assert listed[0]["last_used_at"] is not None  # the 403s above used it
    # Revoking takes effect on the next request and is idempotent.
    first = api_stack.admin.delete(f"/v1/admin/keys/{record['id']}")
    assert first.status_code == 200 and first.json()["revoked_at"]
    assert alice.get("/v1/jobs").status_code == 401
    again = api_stack.admin.delete(f"/v1/admin/keys/{record['id']}")
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    _assert_problem(api_stack.admin.delete("/v1/admin/keys/key_nope"), 404, "unknown key")
    bad = api_stack.admin.post("/v1/admin/keys", json={"tenant": "has space"})
    _assert_problem(bad, 422, "bad tenant name")
    assert bad.json()["field"] == "tenant"
