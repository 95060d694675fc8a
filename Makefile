# OptinProof: `make run` brings up the local stack, `make test` runs every test.
# Both install what they need (venv, pip, npm, Chromium) and are safe to repeat.

VENV   := .venv
PY     := $(VENV)/bin/python
PIP_OK := $(VENV)/.deps-installed
NPM_OK := node_modules/.deps-installed
PYTEST_ARGS ?=

.PHONY: run test lint deps bench translations clean help deploy screenshots

help:
	@echo "make run    - start DynamoDB Local + the app (chalice local) and print the URLs"
	@echo "make test   - install what is needed, lint (ruff, mypy), run the whole test suite"
	@echo "make lint   - ruff (lint + format check) and mypy on app.py and chalicelib/"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make translations - extract and compile the page translations (Babel)"
	@echo "make deploy STAGE=prod SENDER_DOMAIN=example.eu - infra create, then chalice deploy"

$(PY):
	@python=$$(scripts/find-python) && echo "Creating $(VENV) with $$python" && "$$python" -m venv $(VENV)

$(PIP_OK): requirements.txt requirements-dev.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(NPM_OK): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 20 and npm" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: $(PIP_OK) $(NPM_OK)

run: deps
	$(PY) -m devstack.run

lint: deps
	$(VENV)/bin/ruff check app.py chalicelib
	$(VENV)/bin/ruff format --check app.py chalicelib
	$(VENV)/bin/mypy

test: deps lint
	@scripts/ensure-chromium
	$(PY) -m pytest $(PYTEST_ARGS)

bench: deps
	$(PY) -m bench.run
	$(PY) -m bench.dashboard
	$(PY) -m bench.proof
	$(PY) -m bench.validity
	$(PY) -m bench.imports
	$(PY) -m bench.anchor
	$(PY) -m bench.pdf

screenshots: deps
	@scripts/ensure-chromium
	OPTINPROOF_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/test_browser_e2e.py -q

translations: deps
	$(VENV)/bin/pybabel extract -F babel.cfg -k N_ -o locales/messages.pot --no-location --omit-header .
	$(VENV)/bin/pybabel update -i locales/messages.pot -d locales --no-fuzzy-matching
	$(VENV)/bin/pybabel compile -d locales

deploy: deps
	@test -n "$(STAGE)" || { echo "usage: make deploy STAGE=prod SENDER_DOMAIN=example.eu" >&2; exit 2; }
	$(PY) -m chalicelib.cli infra create --stage $(STAGE) $(if $(SENDER_DOMAIN),--sender-domain $(SENDER_DOMAIN),--no-ses)
	CONSENT_TABLE_STREAM_ARN=$$($(PY) -m chalicelib.cli infra create --stage $(STAGE) --no-secrets --no-ses | sed -n 's/^stream //p') \
	  $(VENV)/bin/chalice deploy --stage $(STAGE)

clean:
	rm -rf $(VENV) node_modules .pytest_cache
