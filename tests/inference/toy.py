"""A small model with a full vocabulary (users, items, side features, context), for tests.

Keys: user 0-5 | item 6-15 | genre 16-18 (item side) | age 19-20 (user side) | device 21-22
(context), feature_dim 23, K = 4.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fmkit.artifact import Artifact
from fmkit.features.vocabulary import Field, Vocabulary

USERS = [f"u{i}" for i in range(6)]
ITEMS = [f"i{i}" for i in range(10)]
FEATURE_DIM = 23


def make_vocabulary() -> Vocabulary:
    fields = [
        Field("user", 0, 6, "user", True, tuple(USERS)),
        Field("item", 6, 10, "item", True, tuple(ITEMS)),
        Field("genre", 16, 3, "item", False, ("action", "drama", "comedy")),
        Field("age", 19, 2, "user", True, ("young", "old")),
        Field("device", 21, 2, "context", True, ("web", "app")),
    ]
    user_features = {u: [(19 + i % 2, 1.0)] for i, u in enumerate(USERS)}
    user_features["newbie"] = [(20, 1.0)]  # known side features, no training rows
    item_features = {it: [(16 + i % 3, 0.5), (16 + (i + 1) % 3, 0.5)]
                     for i, it in enumerate(ITEMS)}
    counts = [5, 9, 1, 7, 3, 8, 2, 6, 4, 0]
    return Vocabulary(FEATURE_DIM, fields, "user", "item", user_features, item_features, counts)


def make_seen(rng: np.random.Generator) -> sp.csr_matrix:
    dense = rng.random((6, 10)) < 0.3
    dense[0, :] = False
    dense[0, [1, 4]] = True  # u0 rated i1 and i4
    return sp.csr_matrix(dense.astype(np.float32))


def make_artifact(rng: np.random.Generator, *, predictor_type: str = "regressor",
                  samples: int = 1, link: str | None = None) -> Artifact:
    """Random weights; ``samples`` > 1 with ``link='probit'`` mimics an MCMC classifier."""
    K = 4
    if link is None:
        link = "logit" if predictor_type == "binary_classifier" else "identity"
    return Artifact(
        w0=rng.normal(0, 0.3, samples).astype(np.float32),
        w=rng.normal(0, 0.5, (samples, FEATURE_DIM)).astype(np.float32),
        V=rng.normal(0, 0.6, (samples, FEATURE_DIM, K)).astype(np.float32),
        predictor_type=predictor_type,
        link=link,
        metadata={"hyperparameters": {"num_factors": K, "predictor_type": predictor_type}},
        vocabulary=make_vocabulary().to_dict(),
        seen=make_seen(rng),
    )


def pair_rows(vocab: Vocabulary, user: str, items: list[str],
              context: dict[str, str] | None = None) -> sp.csr_matrix:
    """Explicit FM rows user + item (+ context) built independently of the recommender."""
    urow = vocab.entity_rows("user", [user])
    irows = vocab.entity_rows("item", items)
    rows = sp.vstack([urow] * len(items)) + irows
    if context:
        extra = sp.lil_matrix(rows.shape, dtype=np.float32)
        for name, value in context.items():
            extra[:, vocab.key(name, value)] = 1.0
        rows = rows + extra
    return sp.csr_matrix(rows)
