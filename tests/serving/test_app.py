"""The server in process: routes, content types, the error table and the runtime façade."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fmkit.io.protobuf import decode_label_records, encode_batch
from fmkit.sparse import SparseBatch
from serving.conftest import client_for

SPARSE = {"data": {"features": {"keys": [0, 6, 16], "shape": [23], "values": [1, 1, 0.5]}}}
ROW = np.zeros((1, 23), np.float32)
ROW[0, [0, 6, 16]] = [1, 1, 0.5]


def _post(client, body, content_type="application/json", accept=None, path="/invocations"):
    headers = {"content-type": content_type}
    if accept:
        headers["accept"] = accept
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return client.post(path, content=data, headers=headers)


def test_ping_and_execution_parameters(client):
    r = client.get("/ping")
    assert r.status_code == 200 and r.content == b""
    params = client.get("/execution-parameters").json()
    assert params["BatchStrategy"] == "MULTI_RECORD" and params["MaxPayloadInMB"] == 6


def test_json_scores_match_the_predictor(client, binary_predictor):
    r = _post(client, {"instances": [SPARSE, {"features": ROW[0].tolist()}]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    expected = float(binary_predictor.predict_scores(ROW)[0])
    label = "1.0" if expected >= 0.5 else "0.0"
    one = f'{{"score": {float(np.float32(expected))!r}, "predicted_label": {label}}}'
    assert r.content == f'{{"predictions": [{one}, {one}]}}'.encode()


def test_accept_jsonlines_and_recordio(client, binary_predictor):
    expected = binary_predictor.predict_scores(ROW)
    r = _post(client, {"instances": [SPARSE] * 3}, accept="application/jsonlines")
    assert r.headers["content-type"] == "application/jsonlines"
    assert [json.loads(x)["score"] for x in r.text.splitlines()] == \
        pytest.approx([float(expected[0])] * 3, rel=1e-6)
    body = encode_batch(SparseBatch.from_matrix(np.repeat(ROW, 2, axis=0)))
    r = _post(client, body, "application/x-recordio-protobuf",
              accept="application/x-recordio-protobuf")
    assert r.headers["content-type"] == "application/x-recordio-protobuf"
    got = decode_label_records(r.content)
    np.testing.assert_allclose(got["score"], [expected[0]] * 2, rtol=1e-6)
    assert set(got) == {"score", "predicted_label"}


def test_batch_mode_defaults_to_jsonlines(binary_predictor):
    with client_for(binary_predictor, batch_mode=True) as c:
        r = _post(c, b"[" + b",".join([b"0"] * 23) + b"]\n", "application/jsonlines")
        assert r.headers["content-type"] == "application/jsonlines"
        assert r.text.endswith("}\n")


@pytest.mark.parametrize("body,content_type,status,message", [
    (b"{not json", "application/json", 400, "malformed JSON"),
    (b'{"instances": []}', "text/plain", 415, "not supported"),
    (json.dumps({"instances": [{"data": {"features": {"keys": [99], "shape": [23],
                                                      "values": [1]}}}]}).encode(),
     "application/json", 400, "out of range"),
    (json.dumps({"instances": [{"data": {"features": {"keys": [1], "shape": [24],
                                                      "values": [1]}}}]}).encode(),
     "application/json", 400, "shape is"),
    (json.dumps({"instances": [{"data": {"features": {"keys": [1], "values": [1]}}}]}).encode(),
     "application/json", 400, "shape"),
    (b"\x0a\x23\xd7\xce\xff\xff", "application/x-recordio-protobuf", 400, "request"),
])
def test_bad_requests_get_4xx_json_and_no_traceback(client, body, content_type, status, message):
    r = _post(client, body, content_type)
    assert r.status_code == status
    payload = r.json()
    assert message in payload["message"] and payload["request_id"]
    assert "Traceback" not in r.text


def test_empty_instances_and_payload_limit(binary_predictor):
    with client_for(binary_predictor, max_payload_bytes=1000) as c:
        r = _post(c, {"instances": []})
        assert r.status_code == 200 and r.content == b'{"predictions": []}'
        r = _post(c, {"instances": [{"features": [0.0] * 23}] * 20})
        assert r.status_code == 413 and "limit is 1000 bytes" in r.json()["message"]

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(20):
                yield b" " * 100
        r = c.post("/invocations", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert c.get("/ping").status_code == 200


def test_internal_errors_are_500_with_request_id_only(binary_predictor, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(binary_predictor, "predict_batch", boom)
    with client_for(binary_predictor) as c:
        r = _post(c, {"instances": [SPARSE]})
        assert r.status_code == 500
        assert "secret" not in r.text and r.json()["request_id"] in r.json()["message"]
        r = _post(c, {"instances": [SPARSE]}, path="/endpoints/fm/invocations")
        assert r.status_code == 424 and r.json()["OriginalStatusCode"] == 500
        assert r.json()["message"].startswith("Received server error (500) from model")


def test_unknown_route_and_method_are_json(client):
    assert client.get("/nope").status_code == 404
    r = client.get("/invocations")
    assert r.status_code == 405 and "message" in r.json()


def test_runtime_facade_success_and_error_mapping(binary_predictor):
    with client_for(binary_predictor, endpoint_name="fm-1") as c:
        r = _post(c, {"instances": [SPARSE]}, path="/endpoints/fm-1/invocations",
                  accept="application/json")
        assert r.status_code == 200
        assert r.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
        assert len(r.headers["x-amzn-requestid"]) == 32
        assert r.json()["predictions"][0]["score"] == pytest.approx(
            float(binary_predictor.predict_scores(ROW)[0]), rel=1e-6)
        r = _post(c, b"{oops", path="/endpoints/fm-1/invocations")
        assert r.status_code == 424 and r.headers["x-amzn-errortype"] == "ModelError"
        body = r.json()
        assert body["OriginalStatusCode"] == 400 and "malformed JSON" in body["OriginalMessage"]
        assert body["message"].startswith('Received client error (400) from model with message "')
        r = _post(c, {"instances": []}, path="/endpoints/other/invocations")
        assert r.status_code == 400 and r.headers["x-amzn-errortype"] == "ValidationError"
        r = _post(c, {"instances": []}, path="/endpoints/-bad-/invocations")
        assert r.status_code == 400 and "endpointName" in r.json()["message"]
        r = _post(c, b"", path="/endpoints/fm-1/invocations")
        assert r.status_code == 400 and r.headers["x-amzn-errortype"] == "ValidationError"
        r = _post(c, b"x", "text/plain", path="/endpoints/fm-1/invocations")
        assert r.status_code == 424 and r.json()["OriginalStatusCode"] == 415


def test_recommend_and_similar_routes(client, binary_predictor):
    from fmkit.inference.recommend import Recommender

    rec = Recommender(binary_predictor.artifact)
    r = client.post("/recommend", json={"user": "u0", "k": 3})
    assert r.status_code == 200
    expected = rec.recommend("u0", k=3)
    body = r.json()
    assert body["user"] == "u0" and "cold_start" not in body
    assert [x["item"] for x in body["recommendations"]] == expected.items
    assert [x["score"] for x in body["recommendations"]] == pytest.approx(expected.scores)
    r = client.post("/recommend", json={"users": ["u1", "ghost"], "k": 2, "label_only": True})
    results = r.json()["results"]
    assert results[1]["cold_start"] == "popularity"
    # label_only holds for the cold user too: predicted label 1, a probability
    for result in results:
        assert all(0.5 <= x["score"] <= 1.0 for x in result["recommendations"]), result
    r = client.post("/recommend", json={"user": "u2", "context": {"device": "app"},
                                        "exclude": ["i0"], "exclude_seen": False, "k": 10})
    assert "i0" not in [x["item"] for x in r.json()["recommendations"]]
    r = client.post("/similar", json={"item": "i3", "k": 2})
    assert [x["item"] for x in r.json()["similar"]] == rec.similar("i3", k=2).items
    for bad, message in [({"k": 3}, '"user"'), ({"user": "u0", "k": -1}, '"k"'),
                         ({"user": "u0", "context": {"device": "tv"}}, "not a known value"),
                         ({"user": "u0", "exclude_seen": "yes"}, "true or false")]:
        r = client.post("/recommend", json=bad)
        assert r.status_code == 400 and message in r.json()["message"]
    assert client.post("/similar", json={"item": "zzz"}).status_code == 400
    assert client.post("/recommend", content=b"[1]").status_code == 400


@pytest.mark.parametrize(("user", "flag"), [("ghost", "popularity"),
                                            ("newbie", "side_features")])
def test_cold_start_answers_apply_min_score_and_label_only(client, binary_predictor, user,
                                                           flag):
    from fmkit.inference.recommend import Recommender

    n_items = Recommender(binary_predictor.artifact).n_items

    def answer(**extra):
        r = client.post("/recommend", json={"user": user, "k": n_items, **extra})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["cold_start"] == flag  # still flagged as a cold-start answer
        return [(x["item"], x["score"]) for x in body["recommendations"]]

    full = answer()
    assert len(full) == n_items
    scores = [s for _, s in full]
    # on the binary model's scale: probabilities (not training counts), best first
    assert all(0.0 <= s <= 1.0 for s in scores), scores
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    # min_score keeps exactly the items of the full answer scoring at least that much
    cut = scores[n_items // 2]
    assert answer(min_score=cut) == [(i, s) for i, s in full if s >= cut]
    assert answer(min_score=1.01) == []
    # label_only keeps exactly the items whose predicted label is 1
    assert answer(label_only=True) == [(i, s) for i, s in full if s >= 0.5]
    above = max(cut, 0.5)
    assert answer(label_only=True, min_score=cut) == [(i, s) for i, s in full if s >= above]


def test_sagemaker_model_served_reproduces_test_rmse(sagemaker_u1):
    from fmkit.serving.app import create_app
    from serving.conftest import TestClient

    body = (sagemaker_u1 / "test.protobuf").read_bytes()
    from fmkit.io.protobuf import decode_batch

    labels = decode_batch(body).labels.astype(np.float64)
    with TestClient(create_app(sagemaker_u1)) as c:
        r = c.post("/invocations", content=body, headers={
            "content-type": "application/x-recordio-protobuf", "accept": "application/jsonlines"})
        assert r.status_code == 200
        scores = np.array([json.loads(x)["score"] for x in r.text.splitlines()])
        assert np.sqrt(np.mean((scores - labels) ** 2)) == pytest.approx(1.00026300, abs=1e-6)
        one = {"instances": [{"data": {"features": {"keys": [0, 948], "shape": [2625],
                                                    "values": [1, 1]}}}]}
        r = c.post("/invocations", json=one)
        assert r.content == b'{"predictions": [{"score": 3.5394201278686523}]}'  # spec 6.3
        r = c.post("/recommend", json={"user": "1"})
        assert r.status_code == 400 and "vocabulary" in r.json()["message"]


def test_missing_or_corrupt_model_fails_at_start(tmp_path):
    from fmkit.errors import ArtifactError
    from fmkit.serving.app import create_app
    from serving.conftest import TestClient

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metadata.json").write_text("{")
    for path, message in [(tmp_path / "missing", "does not exist"),
                          (tmp_path / "bad", "metadata.json")]:
        with pytest.raises(ArtifactError, match=message):
            with TestClient(create_app(path)):
                pass
