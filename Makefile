# The two commands that matter: `make demo` and `make test` (README.md).
# Both create .venv from pyproject.toml (pinned by constraints.txt) on first use.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench bench-console vectors catalogs lint clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Schakel needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# One pytest-xdist worker per core, a whole test file to a worker (its module fixtures --
# a server, a browser, a mypy run -- start once), the longest files first (tests/conftest.py)
# so that no long file starts last.  `$(BIN)/python -m pytest tests/test_x.py` runs one file
# in one process.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

demo: $(STAMP)
	$(BIN)/schakel demo

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,bench]'
	@if [ -d bench ] && ls bench/*.py >/dev/null 2>&1; then \
		for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done; \
	else echo "no benchmarks in bench/"; fi

# The console alone (bench/bench_console.py, also run by `make bench`): 10,000 cases and a
# 10^5-entry audit log, about 10 minutes; writes bench/results/console.json.
bench-console: $(STAMP)
	$(BIN)/python bench/bench_console.py

# Rebuild protocol/vectors/*.json from their generators in tests/ (review the diff!).
vectors: $(STAMP)
	for g in tests/vectors_*.py; do $(BIN)/python $$g || exit 1; done
	$(BIN)/python tests/test_httpsig.py --regenerate

# The message catalog (ADR 0037): extract the msgids of cli/ (its Python, and the
# console's Jinja templates through Jinja's Babel extractor: babel.cfg) into build/schakel.pot, bring
# the Dutch catalog up to date (new messages arrive empty: translate them in
# cli/locale/nl/LC_MESSAGES/schakel.po), and compile it to the .mo beside it.
# tests/test_i18n.py fails until every message has its Dutch and the .mo matches the .po.
LOCALES := cli/locale
catalogs: $(STAMP)
	@mkdir -p build
	$(BIN)/pybabel -q extract --project=schakel --add-location=file --sort-output \
		--no-wrap --omit-header -F babel.cfg -o build/schakel.pot cli
	$(BIN)/pybabel -q update --no-fuzzy-matching --ignore-obsolete \
		--ignore-pot-creation-date --no-wrap --init-missing -l nl -D schakel \
		-i build/schakel.pot -d $(LOCALES)
	$(BIN)/pybabel compile --statistics -D schakel -d $(LOCALES)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
