# The two commands a new user runs (README): `make demo` and `make test`.
.PHONY: bootstrap demo test lint bench pictures docs docs-build

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

# The documentation site (mkdocs.yml, docs/): `make docs` serves it on 127.0.0.1:8000 with live reload;
# `make docs-build` builds it as .ci/run does, strictly (a broken link or anchor fails) into site/ (git-ignored).
docs: bootstrap
	@NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs serve

docs-build: bootstrap
	@NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site

# The documentation's pictures (docs/*.png): a small benchmark run on the fast profile, Airflow's graph screenshotted
# with headless Chromium (bootstrap --pictures installs Debian's chromium). matplotlib comes from the `pictures`
# dependency group only.
pictures:
	@./scripts/bootstrap.sh --pictures
	@PATH="$$HOME/.local/bin:$$PWD/.tools/uv/bin:$$PATH" uv sync --frozen --quiet --group pictures && .venv/bin/python -m scripts.pictures
