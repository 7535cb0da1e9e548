"""Model folders: committed in one step, nothing of the old model left; one load_model."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fmkit.artifact import Artifact, load, save
from fmkit.errors import ArtifactError
from fmkit.inference.predictor import Predictor
from fmkit.io import folders, sagemaker_model
from fmkit.model_store import load_model
from inference.toy import make_artifact


def _generation(g: int) -> tuple[Artifact, dict[str, bytes]]:
    """Model number ``g``: odd ones have a vocabulary and seen items, even ones a
    metrics.json; every part says ``g`` so that a mix of two models shows."""
    F, K = 30, 3
    odd = g % 2 == 1
    art = Artifact.from_point(
        float(g), np.full(F, g, np.float32), np.full((F, K), 0.01 * g, np.float32),
        "regressor", metadata={"generation": g},
        vocabulary={"generation": g} if odd else None)
    if odd:
        import scipy.sparse as sp

        art.seen = sp.csr_matrix(np.eye(3, 4, dtype=np.float32) * (g % 5 + 1))
    extras = {} if odd else {"metrics.json": json.dumps({"generation": g}).encode()}
    return art, extras


def _expected_files(g: int) -> set[str]:
    base = {"metadata.json", "weights.npz"}
    return base | ({"vocabulary.json", "seen.npz"} if g % 2 else {"metrics.json"})


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 4096):
        out += chunk
    return out


def _check(folder: Path) -> int:
    """Assert the folder is one whole model of some generation; return the generation."""
    art = load(folder)
    g = int(art.metadata["generation"])
    assert float(art.w0[0]) == g and np.all(art.w == g)
    assert sorted(os.listdir(folder)) == sorted(_expected_files(g)), (g, os.listdir(folder))
    if g % 2:
        assert art.vocabulary == {"generation": g} and art.seen is not None
    else:
        assert art.vocabulary is None and art.seen is None
        assert json.loads((folder / "metrics.json").read_text()) == {"generation": g}
    return g


def test_retrained_model_leaves_nothing_of_the_old_one(tmp_path):
    folder = tmp_path / "m"
    art, extras = _generation(1)
    save(art, folder, extra_files={"notes.txt": "old run"})
    (folder / "stray.log").write_text("written by hand")
    assert (folder / "vocabulary.json").is_file()
    art, extras = _generation(2)  # no vocabulary, no seen items
    assert save(art, folder, extra_files=extras) == folder
    assert _check(folder) == 2
    assert not (folder / "vocabulary.json").exists() and not (folder / "stray.log").exists()
    assert load_model(folder).vocabulary is None
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary sibling left


def test_extra_files_are_part_of_the_folder_and_names_are_checked(tmp_path):
    art, _ = _generation(2)
    save(art, tmp_path / "m", extra_files={"metrics.json": '{"test:rmse": 1.0}'})
    assert json.loads((tmp_path / "m" / "metrics.json").read_text()) == {"test:rmse": 1.0}
    for bad in ("../x", "a/b", ".hidden", "", "metadata.json", "weights.npz"):
        with pytest.raises(ArtifactError, match="extra file"):
            save(art, tmp_path / "m", extra_files={bad: b"x"})
    # a refused save changes nothing
    assert json.loads((tmp_path / "m" / "metrics.json").read_text()) == {"test:rmse": 1.0}
    assert load(tmp_path / "m").metadata["generation"] == 2
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="not a folder"):
        save(art, tmp_path / "file")


def test_two_rename_fallback_also_replaces_everything(tmp_path, monkeypatch):
    monkeypatch.setattr(folders, "exchange", lambda a, b: False)
    folder = tmp_path / "m"
    for g in (1, 2, 3):
        art, extras = _generation(g)
        save(art, folder, extra_files=extras)
        assert _check(folder) == g
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_stale_temporary_folders_of_dead_writers_are_removed(tmp_path):
    art, extras = _generation(2)
    dead = tmp_path / ".m.tmp-999999999-abc"  # no such process
    dead.mkdir()
    (dead / "weights.npz").write_bytes(b"half")
    mine = tmp_path / f".m.tmp-{os.getpid()}-xyz"  # a live writer's: kept
    mine.mkdir()
    save(art, tmp_path / "m", extra_files=extras)
    assert not dead.exists() and mine.exists()


@pytest.mark.skipif(not hasattr(os, "fork") or not sys.platform.startswith("linux"),
                    reason="the kill test forks a writer (Linux)")
def test_writer_killed_at_random_points_leaves_old_or_new_model(tmp_path):
    """SIGKILL a process that saves models in a loop, at a random moment, 60 times: the
    folder is always one whole model, the last one committed or the one being committed,
    loadable, and never missing, even while the writer runs."""
    folder = tmp_path / "m"
    art, extras = _generation(0)
    save(art, folder, extra_files=extras)
    rng = random.Random(1234)
    last = waited = 0
    for trial in range(60):
        start = last
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer: saves start+1, start+2, ...; a byte after each save
            try:
                os.close(read_end)
                g = start
                while True:
                    g += 1
                    a, e = _generation(g)
                    save(a, folder, extra_files=e)
                    os.write(write_end, b"x")
            finally:
                os._exit(0)
        os.close(write_end)
        wait_for = rng.randint(0, 2)  # kill after this many saves, then at a random moment
        waited += wait_for
        committed = 0
        while committed < wait_for:
            got = os.read(read_end, 1)
            assert got, f"trial {trial}: the writer stopped"
            committed += 1
            assert folder.is_dir()
        deadline = time.monotonic() + rng.uniform(0.0, 0.012)
        while time.monotonic() < deadline:  # the path never goes missing while it writes
            assert folder.is_dir(), f"trial {trial}: {folder} missing during a save"
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        committed += len(_read_all(read_end))  # saves it reported before it was killed
        os.close(read_end)
        g = _check(folder)
        # the last save it finished, or the next one if killed after the swap and before
        # it could report it: nothing older, nothing half-written
        assert g in (start + committed, start + committed + 1), (trial, g, start, committed)
        assert load_model(folder).metadata["generation"] == g
        last = g
    assert last >= waited > 30  # every save waited for is in the folder
    # what the killed writers left beside the folder goes with the next save
    a, e = _generation(last + 1)
    save(a, folder, extra_files=e)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_readers_during_saves_see_whole_models(tmp_path):
    """A load that races a save reads all files from the same model (the folder handle)."""
    folder = tmp_path / "m"
    art, extras = _generation(0)
    save(art, folder, extra_files=extras)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        g = 0
        try:
            while not stop.is_set():
                g += 1
                a, e = _generation(g)
                save(a, folder, extra_files=e)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        loads = 0
        for _ in range(300):
            a = load(folder)
            g = int(a.metadata["generation"])
            assert float(a.w0[0]) == g
            assert (a.vocabulary is not None) == bool(g % 2)
            if a.vocabulary is not None:
                assert a.vocabulary == {"generation": g}
            loads += 1
    finally:
        stop.set()
        thread.join()
    assert not errors and loads == 300


def test_load_model_reads_fmkit_and_sagemaker_models_artifact_only_fmkit(rng, tmp_path):
    art = make_artifact(rng)
    save(art, tmp_path / "fm")
    sagemaker_model.write(art, tmp_path / "sm" / "model.tar.gz")
    rows = np.eye(23, dtype=np.float32)[:5]
    want = Predictor(art).predict_scores(rows)
    for where in (tmp_path / "fm", tmp_path / "sm", tmp_path / "sm" / "model.tar.gz",
                  f"file://{tmp_path / 'fm'}"):
        np.testing.assert_allclose(Predictor(load_model(where)).predict_scores(rows), want,
                                   rtol=1e-6)
        np.testing.assert_allclose(Predictor.load(where).predict_scores(rows), want,
                                   rtol=1e-6)
    with pytest.raises(ArtifactError, match="no metadata.json"):
        load(tmp_path / "sm")  # the fmkit reader reads fmkit folders only
    with pytest.raises(ArtifactError, match="not an fmkit model folder"):
        load(tmp_path / "sm" / "model.tar.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="empty is not a model"):
        load_model(tmp_path / "empty")
    with pytest.raises(ArtifactError, match="does not exist"):
        load_model(tmp_path / "nothing")


def test_load_model_attaches_a_vocabulary(rng, tmp_path):
    art = make_artifact(rng)
    vocab = art.vocabulary
    art.vocabulary = None
    sagemaker_model.write(art, tmp_path / "model.tar.gz")
    (tmp_path / "vocabulary.json").write_text(json.dumps(vocab))
    assert load_model(tmp_path / "model.tar.gz").vocabulary is None
    loaded = load_model(tmp_path / "model.tar.gz", vocabulary=tmp_path / "vocabulary.json")
    assert loaded.vocabulary == vocab
    other = dict(vocab, feature_dim=99)
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ArtifactError, match="feature_dim 99 but the model has 23"):
        load_model(tmp_path / "model.tar.gz", vocabulary=tmp_path / "other.json")
