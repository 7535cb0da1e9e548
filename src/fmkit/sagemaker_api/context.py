"""What every SageMaker operation handler gets: the registry, the object store, the API's
own records, and the region of the request (from its credential scope)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fmkit.errors import FMError
from fmkit.sagemaker_api.objects import ObjectStore
from fmkit.sagemaker_api.protocol import DEFAULT_REGION, ApiError, arn, validation
from fmkit.sagemaker_api.state import ApiState

# the built-in algorithm's image in any region: <account>.dkr.ecr.<region>.amazonaws.com/...
_FM_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
                       r"factorization-machines(:[\w.-]+|@sha256:[0-9a-f]+)?$")
_FMKIT_IMAGE = re.compile(r"^([\w.-]+(:\d+)?/)*fmkit(:[\w.-]+|@sha256:[0-9a-f]+)?$")
#: the image name Describe answers for jobs and models fmkit's own commands made
FMKIT_IMAGE = "fmkit:latest"


@dataclass(frozen=True)
class Context:
    """One request's view of the server's state."""

    registry: Any
    store: ObjectStore
    state: ApiState
    region: str = DEFAULT_REGION

    def arn(self, kind: str, name: str) -> str:
        return arn(self.region, kind, name)

    def create(self, kind: str, name: str, definition: dict[str, Any],
               start: Callable[[], object]) -> None:
        """Keep ``definition`` as resource ``kind``/``name`` and run ``start``.

        If ``start`` fails the definition is forgotten, so that a retried request sees the
        real error rather than "already exists"; an FMError becomes a ValidationException.
        """
        self.state.put(kind, name, definition)
        try:
            start()
        except FMError as exc:
            self.state.remove(kind, name)
            raise validation(str(exc)) from None
        except BaseException:
            self.state.remove(kind, name)
            raise


def check_image(image: str | None, *, what: str = "TrainingImage") -> str:
    """Return ``image`` if fmkit runs it: SageMaker's factorization-machines image of any
    region, or an fmkit image; else raise ValidationException saying so."""
    if not image:
        raise validation(f"{what} is required: use sagemaker.image_uris.retrieve("
                         "'factorization-machines', region) or an fmkit image.")
    if _FM_IMAGE.match(image) or _FMKIT_IMAGE.match(image):
        return image
    raise validation(
        f"{what} {image!r} is not supported by this local SageMaker: it runs the built-in "
        "Factorization Machines algorithm only (<account>.dkr.ecr.<region>.amazonaws.com/"
        "factorization-machines:1, from sagemaker.image_uris.retrieve('factorization-"
        "machines', region)) or an fmkit image ('fmkit:<tag>').")


def require(body: dict[str, Any], *names: str) -> None:
    """Raise SageMaker's validation error for the first missing member."""
    for name in names:
        if body.get(name) in (None, ""):
            raise validation(f"1 validation error detected: Value null at '{name[0].lower()}"
                             f"{name[1:]}' failed to satisfy constraint: Member must not be "
                             "null")


def page(items: list[Any], body: dict[str, Any], *, default: int = 10
         ) -> tuple[list[Any], str | None]:
    """Return one page of ``items`` per ``MaxResults``/``NextToken``, and the next token."""
    try:
        start = int(body.get("NextToken") or 0)
        size = int(body.get("MaxResults") or default)
    except (TypeError, ValueError):
        raise ApiError("ValidationException", "Invalid pagination token or MaxResults.") \
            from None
    size = max(1, min(size, 100))
    chunk = items[start:start + size]
    return chunk, (str(start + size) if start + size < len(items) else None)
