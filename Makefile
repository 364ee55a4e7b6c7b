# The two commands a new user runs (README): `make demo` and `make test`.
.PHONY: bootstrap demo test lint bench pictures

bootstrap:
	@./scripts/bootstrap.sh

demo: bootstrap
	@.venv/bin/python -m devstack

test: bootstrap
	@./scripts/test.sh

lint: bootstrap
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench: bootstrap
	@.venv/bin/python -m bench

# The README's pictures (docs/*.png): a small benchmark run on the fast profile, Airflow's graph screenshotted
# with headless Chromium (bootstrap --pictures installs Debian's chromium). matplotlib comes from the `pictures`
# dependency group only.
pictures:
	@./scripts/bootstrap.sh --pictures
	@PATH="$$HOME/.local/bin:$$PWD/.tools/uv/bin:$$PATH" uv sync --frozen --quiet --group pictures && .venv/bin/python -m scripts.pictures
