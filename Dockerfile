# The controller image: the controller's runtime dependencies only (no Airflow: DAGs run in Composer).
# Build: docker build -t vmbackup-operator/controller:0.1.0 .

FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
# Dependencies first, as their own layer: it is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --no-install-project
# Then the project itself, installed as a wheel (not editable) so /src is not needed at run time.
COPY controller/ controller/
COPY plugins/ plugins/
COPY dags_templates/ dags_templates/
COPY devstack/ devstack/
RUN uv sync --frozen --no-default-groups --no-editable

FROM python:3.11-slim
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Numeric, so that Kubernetes can check runAsNonRoot without looking the name up.
USER 10001:10001
# 8080: /healthz and /readyz (controller/replica.py); 9090: Prometheus /metrics (both set by the chart's environment).
EXPOSE 8080 9090
ENTRYPOINT ["vmbackup-controller"]
