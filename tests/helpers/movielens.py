"""A tiny MovieLens-100K-shaped folder, generated, for tests that must not need ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GENRES = ["unknown", "Action", "Comedy", "Drama"]


def write_fake_ml100k(folder: Path, *, n_users: int = 30, n_items: int = 40,
                      n_ratings: int = 900, seed: int = 0) -> Path:
    """Write u.data, ua.base/ua.test, u.user, u.item, u.genre with planted preferences."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    taste = rng.normal(size=(n_users, 2))
    kind = rng.normal(size=(n_items, 2))
    pairs = set()
    while len(pairs) < n_ratings:
        pairs.add((int(rng.integers(1, n_users + 1)), int(rng.integers(1, n_items + 1))))
    rows = []
    for t, (u, i) in enumerate(sorted(pairs)):
        r = int(np.clip(np.round(3 + 1.2 * taste[u - 1] @ kind[i - 1] + rng.normal(0, 0.5)), 1, 5))
        rows.append(f"{u}\t{i}\t{r}\t{880000000 + t}")
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    test_idx = set(range(0, len(rows), 10))
    (folder / "ua.base").write_text("\n".join(r for k, r in enumerate(rows) if k not in test_idx) + "\n")
    (folder / "ua.test").write_text("\n".join(r for k, r in enumerate(rows) if k in test_idx) + "\n")
    occupations = ["student", "engineer", "artist"]
    (folder / "u.user").write_text("\n".join(
        f"{u}|{int(rng.integers(12, 70))}|{'MF'[u % 2]}|{occupations[u % 3]}|0000{u}"
        for u in range(1, n_users + 1)) + "\n")
    (folder / "u.genre").write_text("\n".join(f"{g}|{k}" for k, g in enumerate(GENRES)) + "\n\n")
    items = []
    for i in range(1, n_items + 1):
        flags = ["0"] * len(GENRES)
        flags[1 + i % 3] = "1"
        if i % 5 == 0:
            flags[1] = "1"
        items.append(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|" + "|".join(flags))
    (folder / "u.item").write_text("\n".join(items) + "\n")
    return folder
