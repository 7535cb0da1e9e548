"""Score a labelled channel with a saved model: SageMaker-named metrics, ranking metrics."""

from __future__ import annotations

from typing import Any

from fmkit.errors import DataError


def evaluate_model(model_dir: str, test: str, *, content_type: str | None = None,
                   ranking_k: int | None = None) -> dict[str, float]:
    """Return the test metrics of the model at ``model_dir`` (folder, model.tar.gz or
    ``s3://``) on the channel ``test``; with ``ranking_k``, precision/recall/NDCG/MAP@k too.

    Raises
    ------
    DataError
        The channel is empty, or its rows do not fit the model.
    """
    import fmkit.io as fio
    from fmkit import metrics as M
    from fmkit.inference.predictor import Predictor

    predictor = Predictor.load(model_dir)
    batch = fio.read(test, content_type=content_type, require_labels=True)
    if batch.n_rows == 0:
        raise DataError(f"the test channel {test} has no rows.")
    batch.validate(feature_dim=predictor.feature_dim, predictor_type=predictor.predictor_type,
                   require_labels=True, source=test)
    scores = predictor.predict_scores(batch.with_feature_dim(predictor.feature_dim))
    out: dict[str, Any] = M.compute_metrics(predictor.predictor_type, batch.labels, scores,
                                            weights=batch.weights)
    if ranking_k:
        from fmkit.inference.ranking import ranking_metrics

        out.update(ranking_metrics(predictor, batch, k=ranking_k))
    return out
