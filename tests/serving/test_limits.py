"""Request limits of /recommend: users per request (413) and k (400), configurable."""

from __future__ import annotations

import argparse

import pytest

from fmkit.errors import ConfigError
from fmkit.serving.app import ServeConfig, config_from_args, config_from_env
from inference.toy import ITEMS, USERS
from serving.conftest import client_for


def test_users_per_request_default_is_1000(client):
    users = (USERS * 200)[:1000]
    r = client.post("/recommend", json={"users": users, "k": 1})
    assert r.status_code == 200 and len(r.json()["results"]) == 1000
    r = client.post("/recommend", json={"users": users + ["u0"], "k": 1})
    assert r.status_code == 413
    body = r.json()
    assert "1001 users" in body["message"] and "at most 1000" in body["message"]
    assert body["request_id"]


def test_k_at_most_the_number_of_items(client):
    assert client.post("/recommend", json={"user": "u0", "k": len(ITEMS)}).status_code == 200
    r = client.post("/recommend", json={"user": "u0", "k": len(ITEMS) + 1})
    assert r.status_code == 400
    assert r.json()["message"] == (f'"k" is {len(ITEMS) + 1}, but the model has {len(ITEMS)} '
                                   f"items; ask for at most {len(ITEMS)}.")
    r = client.post("/recommend", json={"users": ["u0", "u1"], "k": 1000})
    assert r.status_code == 400 and f"has {len(ITEMS)} items" in r.json()["message"]


def test_limits_are_configurable(binary_predictor):
    with client_for(binary_predictor, max_users_per_request=2, max_k=3) as c:
        assert c.post("/recommend", json={"users": ["u0", "u1"], "k": 3}).status_code == 200
        r = c.post("/recommend", json={"users": ["u0", "u1", "u2"]})
        assert r.status_code == 413 and "at most 2 per request" in r.json()["message"]
        r = c.post("/recommend", json={"user": "u0", "k": 4})
        assert r.status_code == 400 and "at most 3 items" in r.json()["message"]
        assert c.post("/recommend", json={"user": "u0"}).status_code == 400  # k=10 > 3


def test_limits_travel_to_workers_and_from_options(monkeypatch):
    config = ServeConfig(model_dir="m", max_users_per_request=50, max_k=7)
    env = config.to_env()
    assert env["FMKIT_MAX_USERS_PER_REQUEST"] == "50" and env["FMKIT_MAX_K"] == "7"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    back = config_from_env()
    assert (back.max_users_per_request, back.max_k) == (50, 7)
    monkeypatch.delenv("FMKIT_MAX_K")
    monkeypatch.delenv("FMKIT_MAX_USERS_PER_REQUEST")
    assert (config_from_env().max_users_per_request, config_from_env().max_k) == (1000, None)
    monkeypatch.setenv("FMKIT_MAX_K", "many")
    with pytest.raises(ConfigError, match="FMKIT_MAX_K must be an integer"):
        config_from_env()
    args = argparse.Namespace(model_dir="m", max_payload_mb=1.0, batch=False, name=None,
                              vocabulary=None, max_users_per_request=None, max_k=None)
    assert config_from_args(args).max_users_per_request == 1000
    args.max_users_per_request, args.max_k = 5, 2
    parsed = config_from_args(args)
    assert (parsed.max_users_per_request, parsed.max_k, parsed.max_payload_bytes) == (
        5, 2, 1024 * 1024)
    args.max_k = 0
    with pytest.raises(ConfigError, match="--max-k must be an int >= 1"):
        config_from_args(args)
    with pytest.raises(ConfigError, match="max_users_per_request must be an int >= 1"):
        ServeConfig(max_users_per_request=0)


def test_serve_command_passes_the_limits():
    from fmkit.serving.__main__ import parse_args

    args = parse_args(["--model-dir", "m", "--max-users-per-request", "9", "--max-k", "4"])
    config = config_from_args(args)
    assert (config.max_users_per_request, config.max_k) == (9, 4)
