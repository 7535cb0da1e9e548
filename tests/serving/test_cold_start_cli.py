"""``fmkit recommend`` for an unknown user: the model's scores, filtered like any answer."""

from __future__ import annotations

import json

import numpy as np
import scipy.sparse as sp

from fmkit.artifact import save
from fmkit.inference.predictor import Predictor
from fmkit.inference.recommend import Recommender
from helpers.cli import run_cli
from inference.toy import ITEMS, make_artifact


def test_recommend_cold_user_min_score_and_label_only(rng, tmp_path, capsys):
    art = make_artifact(rng, predictor_type="binary_classifier")
    save(art, tmp_path / "m")

    def answer(*flags):
        code, out, err = run_cli(capsys, "recommend", "--model-dir", tmp_path / "m", "--user",
                                 "99999", "-k", len(ITEMS), *flags)
        assert code == 0, err
        body = json.loads(out)
        assert body["cold_start"] == "popularity"
        return [(x["item"], x["score"]) for x in body["recommendations"]]

    full = answer()
    assert len(full) == len(ITEMS)
    # the scores are the model's own predictions for the cold-start row with each item
    rec = Recommender(art)
    items = rec.vocabulary.entity_rows("item", [i for i, _ in full])
    rows = sp.vstack([rec.cold_start_row()] * len(full)) + items
    np.testing.assert_allclose([s for _, s in full], Predictor(art).predict_scores(rows),
                               rtol=1e-5)
    assert all(0.0 <= s <= 1.0 for _, s in full)
    assert answer("--min-score", "0.99") == [(i, s) for i, s in full if s >= 0.99]
    assert answer("--label-only") == [(i, s) for i, s in full if s >= 0.5]
    cut = full[len(full) // 2][1]
    assert answer("--min-score", str(cut)) == [(i, s) for i, s in full if s >= cut]
