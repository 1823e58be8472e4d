# Quick start:  make demo       (set up, send the example campaign to the outbox)
#               make test       (set up, lint, run the whole test suite; prints how long)
#               make test-fast  (the suite without browser and slow tests, in parallel)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DB := $(CURDIR)/demo.db
# pytest-xdist workers: one a core. `make test JOBS=0` runs in one process.
# Compiled modules are kept (__pycache__, ignored by git) even where the environment says
# not to: each test that runs the CLI as a child process then starts a third faster.
JOBS   ?= auto
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(JOBS)

.PHONY: venv node-peers demo test test-steps test-fast lint format complexity bench screenshots clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

# Second implementations the tests compare against (node mailparser, the reference
# MJML compiler, mailauth for DKIM), when node and npm are on the machine; those tests
# skip without them.
tests/node/node_modules/.installed: tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/node && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "(npm not found: the tests that compare with node mailparser, mjml and mailauth will skip)"; \
	fi

node-peers: tests/node/node_modules/.installed

demo: venv
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	rm -rf outbox/2026-10-digest build/2026-10-digest reports/2026-10-digest.html
	NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter subscribers import subscribers.example.csv
	NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter build 2026-10-digest
	NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter send 2026-10-digest --yes
	NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter report 2026-10-digest
	NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter report 2026-10-digest --html --no-open
	@echo
	@echo "Look here:"
	@echo "  build/2026-10-digest/email.html   the email as a reader sees it (open it in a browser)"
	@echo "  build/2026-10-digest/email.txt    its plain-text part"
	@echo "  outbox/2026-10-digest/*.eml       one message per subscriber, as it would be sent"
	@echo "  reports/2026-10-digest.html       the campaign's report page, charts and all (no events yet: the outbox has none)"
	@echo "  demo.db                           the SQLite ledger: who got which campaign"
	@echo "  the email with its images, live:  NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter preview 2026-10-digest"

test: venv node-peers
	@start=$$(date +%s); status=0; \
	$(MAKE) --no-print-directory test-steps || status=$$?; \
	echo "== make test took $$(( $$(date +%s) - start )) s"; \
	exit $$status

# The whole suite, browser and slow tests included: on SQLite, then again on PostgreSQL.
test-steps:
	$(BIN)/ruff check src tests benchmarks
	@if grep -q importlinter pyproject.toml; then \
		echo "$(BIN)/lint-imports"; $(BIN)/lint-imports; \
	fi
	TEST_POSTGRES_URL= $(PYTEST)
	@if [ -n "$$TEST_POSTGRES_URL" ]; then \
		echo "== the whole suite again, on PostgreSQL"; \
		echo "$(PYTEST)"; $(PYTEST); \
	else \
		echo "(set TEST_POSTGRES_URL to run the suite on PostgreSQL too; .ci/run does)"; \
	fi

# The inner loop: no browser, no slow tests, no PostgreSQL; in parallel. Under a minute.
test-fast: venv
	@start=$$(date +%s); status=0; \
	TEST_POSTGRES_URL= $(PYTEST) -q -m "not browser and not slow" || status=$$?; \
	echo "== make test-fast took $$(( $$(date +%s) - start )) s"; \
	exit $$status

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: venv
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# The functions with the most paths through them (radon); the test's bound is 15.
complexity: venv
	$(BIN)/python tests/test_complexity.py 25

bench: venv
	$(BIN)/python benchmarks/bench_send.py

screenshots: venv
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) build outbox demo.db demo.db-* .pytest_cache .ruff_cache
