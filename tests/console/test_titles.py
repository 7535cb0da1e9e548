"""Movie titles: prepare keeps them in the vocabulary, recommend and serving show them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.movielens import write_fake_ml100k

from fmkit.features.vocabulary import Field, Vocabulary


def test_movielens_100k_keeps_titles_and_genres(tmp_path) -> None:
    from fmkit.datasets.movielens import load_movielens

    data = load_movielens(write_fake_ml100k(tmp_path / "ml"))
    meta = data.vocabulary.item_metadata
    assert meta["5"] == {"title": "Movie 5 (1995)", "genres": ["Action", "Drama"]}
    assert data.vocabulary.item_title("40") == "Movie 40 (1995)"
    assert data.vocabulary.item_title("999") is None


def test_movielens_1m_titles(tmp_path) -> None:
    from fmkit.datasets.movielens import load_movielens

    folder = tmp_path / "ml-1m"
    folder.mkdir()
    rows = [f"{u}::{i}::{1 + (u * i) % 5}::97830{u}" for u in range(1, 6) for i in range(1, 5)]
    (folder / "ratings.dat").write_text("\n".join(rows) + "\n")
    (folder / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::Adventure\n"
        "3::Grumpier Old Men (1995)::Comedy|Romance\n4::Amélie (2001)::Comedy\n"
        .encode("latin-1"))
    data = load_movielens(folder, split="random")
    assert data.vocabulary.item_title("1") == "Toy Story (1995)"
    assert data.vocabulary.item_metadata["1"]["genres"] == ["Animation", "Children's", "Comedy"]
    assert data.vocabulary.item_title("4") == "Amélie (2001)"


def test_vocabulary_round_trip_and_old_files(tmp_path) -> None:
    fields = [Field("user", 0, 2, "user", True, ("1", "2")),
              Field("item", 2, 2, "item", True, ("10", "20"))]
    vocab = Vocabulary(4, fields, "user", "item",
                       item_metadata={"10": {"title": "Heat (1995)", "genres": ["Action"]}})
    vocab.save(tmp_path)
    back = Vocabulary.load(tmp_path)
    assert back.item_title("10") == "Heat (1995)" and back.item_title("20") is None
    old = json.loads((tmp_path / "vocabulary.json").read_text())
    del old["item_metadata"]  # a vocabulary.json written before titles existed
    loaded = Vocabulary.from_dict(old)
    assert loaded.item_metadata == {} and "item_metadata" not in loaded.to_dict()
    with pytest.raises(Exception, match="item_metadata"):
        Vocabulary.from_dict({**old, "item_metadata": ["not", "an", "object"]})


def _recommender(tmp_path, titles: bool):
    from console.records import write_model
    from fmkit.datasets.movielens import load_movielens
    from fmkit.inference.recommend import Recommender

    data = load_movielens(write_fake_ml100k(tmp_path / "ml"))
    vocab = data.vocabulary
    if not titles:
        vocab.item_metadata = {}
    folder = write_model(tmp_path / "model", vocab.to_dict())
    from fmkit.artifact import load

    return Recommender(load(folder)), folder


def test_recommend_json_gains_a_title(tmp_path) -> None:
    rec, _ = _recommender(tmp_path, titles=True)
    out = rec.recommend("3", k=4).to_dict()
    assert len(out["recommendations"]) == 4
    for entry in out["recommendations"]:
        assert entry["title"] == f"Movie {entry['item']} (1995)"
        assert set(entry) == {"item", "score", "title"}
    similar = rec.similar("7", k=3).to_dict(key="item")["recommendations"]
    assert all(s["title"].startswith("Movie ") for s in similar)


def test_recommend_json_unchanged_without_titles(tmp_path) -> None:
    rec, _ = _recommender(tmp_path, titles=False)
    out = rec.recommend("3", k=4).to_dict()
    assert all(set(e) == {"item", "score"} for e in out["recommendations"])


def test_serving_recommend_similar_and_stats(tmp_path) -> None:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from fmkit.serving.app import create_app

    _, folder = _recommender(tmp_path, titles=True)
    with TestClient(create_app(folder)) as c:
        assert c.get("/stats").json()["requests_served"] == 0
        r = c.post("/recommend", json={"user": "2", "k": 3}).json()
        assert [e["title"] for e in r["recommendations"]] == [
            f"Movie {e['item']} (1995)" for e in r["recommendations"]]
        s = c.post("/similar", json={"item": "5", "k": 2}).json()
        assert len(s["similar"]) == 2 and all("title" in e for e in s["similar"])
        body = {"instances": [{"data": {"features": {"keys": [0, 31], "shape": [70],
                                                     "values": [1.0, 1.0]}}}]}
        assert c.post("/invocations", json=body).status_code == 200
        c.get("/ping")
        stats = c.get("/stats").json()
        assert stats["requests_served"] == 3 and stats["pid"] > 0
    assert np.isfinite(r["recommendations"][0]["score"])
