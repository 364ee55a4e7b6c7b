# The two commands a new user runs (README): `make demo` and `make test`.
.PHONY: bootstrap demo test lint bench

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
