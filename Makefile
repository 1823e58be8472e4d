# Quick start:  make demo   (set up, send the example campaign to the outbox)
#               make test   (set up, lint, run the whole test suite)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DB := $(CURDIR)/demo.db

.PHONY: venv node-peers demo test lint format bench screenshots clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

# Second implementations the tests compare against (node mailparser, the reference
# MJML compiler), when node and npm are on the machine; those tests skip without them.
tests/node/node_modules/.installed: tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/node && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "(npm not found: the tests that compare with node mailparser and mjml will skip)"; \
	fi

node-peers: tests/node/node_modules/.installed

demo: venv
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	rm -rf outbox/2026-10-digest build/2026-10-digest
	NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter subscribers import subscribers.example.csv
	NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter build 2026-10-digest
	NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter send 2026-10-digest --yes
	NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter report 2026-10-digest
	@echo
	@echo "Look here:"
	@echo "  build/2026-10-digest/email.html   the email as a reader sees it (open it in a browser)"
	@echo "  build/2026-10-digest/email.txt    its plain-text part"
	@echo "  outbox/2026-10-digest/*.eml       one message per subscriber, as it would be sent"
	@echo "  demo.db                           the SQLite ledger: who got which campaign"
	@echo "  the email with its images, live:  NEWSLETTER_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/newsletter preview 2026-10-digest"

test: venv node-peers
	$(BIN)/ruff check src tests benchmarks
	TEST_POSTGRES_URL= $(BIN)/python -m pytest
	@if [ -n "$$TEST_POSTGRES_URL" ]; then \
		echo "== the whole suite again, on PostgreSQL"; \
		$(BIN)/python -m pytest; \
	else \
		echo "(set TEST_POSTGRES_URL to run the suite on PostgreSQL too; .ci/run does)"; \
	fi

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: venv
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: venv
	$(BIN)/python benchmarks/bench_send.py

screenshots: venv
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) build outbox demo.db demo.db-* .pytest_cache .ruff_cache
