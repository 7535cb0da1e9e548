# fmkit as a SageMaker "bring your own" container (docs/container.md):
#   docker run IMAGE train   trains from /opt/ml/input, writes /opt/ml/model (SageMaker's FM format)
#   docker run IMAGE serve   serves /opt/ml/model on port 8080 ($SAGEMAKER_BIND_TO_PORT)
# SageMaker starts training jobs with `train` and endpoints / batch transform with `serve`.
#   docker build -t fmkit .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, pinned, CPU build: an unpinned torch pulls a multi-GB CUDA build
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

WORKDIR /opt/fmkit
COPY pyproject.toml README.md ./
COPY scripts/constraints.txt scripts/constraints.txt
COPY src ./src
# train (torch, numba) and serve (starlette, uvicorn, orjson); versions known to work together
RUN pip install -c scripts/constraints.txt ".[train,serve]"

# the console scripts of pyproject.toml under the names SageMaker runs
RUN ln -s "$(command -v fmkit-train)" /usr/local/bin/train \
 && ln -s "$(command -v fmkit-serve)" /usr/local/bin/serve \
 && python -c "import fmkit.sagemaker, fmkit.serving.app"

WORKDIR /opt/ml
EXPOSE 8080
CMD ["serve"]
