# The two commands of the README: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mailflow migrate
	$(BIN)/mailflow serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
# Certificates need DejaVu Sans for names beyond Latin-1; as a user or offline, tests use Latin-1.
	@if [ "$$(id -u)" = 0 ] && [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then \
		{ DEBIAN_FRONTEND=noninteractive apt-get -qq update \
		  && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
		     fonts-dejavu-core; } >/dev/null 2>&1 \
		|| echo "fonts-dejavu-core not installed: certificates fall back to Latin-1"; \
	fi
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.matching
	$(BIN)/python -m bench.tick
	$(BIN)/python -m bench.coordinators

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
