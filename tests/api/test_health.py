"""GET /health."""

from datetime import datetime, timedelta, timezone

import requests


def test_health_answers_healthy_with_a_zoned_timestamp(envhub):
    r = requests.get(f"{envhub.url}/health", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("application/json")
    body = r.json()
    assert body["status"] == "healthy"
    ts = datetime.fromisoformat(body["timestamp"])
    assert ts.tzinfo is not None, f"timestamp without a zone: {body['timestamp']}"
    assert abs(datetime.now(timezone.utc) - ts) < timedelta(minutes=5), body["timestamp"]
    # what it checked: the engine (with the API version negotiated) and the catalog
    assert body["engine"]["ok"] is True and body["engine"]["api_version"] >= "1.41", body
    assert body["engine"].get("error") is None, body
    assert body["catalog"]["ok"] is True and body["catalog"]["schema_version"] >= 8, body


def test_unknown_path_is_404_with_detail(envhub):
    r = requests.get(f"{envhub.url}/no/such/path", timeout=10)
    assert r.status_code == 404
    assert isinstance(r.json().get("detail"), str)
