"""Score one request body: decode, predict, encode (the server's and batch transform's step)."""

from __future__ import annotations

from fmkit.inference.predictor import Predictor
from fmkit.io import codecs


def score_body(predictor: Predictor, body: bytes, content_type: str | None,
               accept: str | None, *, batch_mode: bool = False,
               line_offset: int = 0) -> tuple[bytes, str]:
    """Decode, score and encode one request; return ``(body, response content type)``.

    ``content_type`` and ``accept`` are the request's headers (:mod:`fmkit.io.codecs`);
    ``batch_mode`` makes JSON Lines the default response (SageMaker batch transform);
    ``line_offset`` shifts the line numbers in errors (batch transform's payloads).

    Raises
    ------
    DataError
        The body does not decode, or a row does not fit the model.
    UnsupportedMediaTypeError
        An unknown content type or accept.
    """
    kind = codecs.response_type(accept, batch=batch_mode)
    batch = codecs.decode_request(body, content_type, predictor.feature_dim,
                                  line_offset=line_offset)
    predictions = predictor.predict_batch(batch, validate=False)
    return codecs.encode_response(predictions, kind), kind
