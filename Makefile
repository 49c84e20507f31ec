# The two commands of the README: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench install clean

# Nothing to compile: every dependency comes as a wheel, so a server needs no compiler or
# -dev packages. --only-binary=:all: makes one that would build from source fail here (and
# in CI) instead of on a volunteer's server. The named exceptions publish only their source
# and are pure Python, so they build without a compiler: dkimpy. mailflow itself, a local
# directory, is always built (by setuptools, itself a wheel).
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --only-binary=:all: --upgrade pip
	$(BIN)/python -m pip install --quiet --only-binary=:all: --no-binary=dkimpy -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mailflow migrate
	$(BIN)/mailflow serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
# Debian packages the tests use, installed when root: DejaVu Sans for certificates beyond
# Latin-1 (without it they fall back to Latin-1), Dovecot, the real IMAP server the
# poller is tested against, and Postfix, the MTA in front of mailflow (as root, their
# tests fail rather than skip without them), and mutt, the real mail client of the round
# trip in tests/test_mutt.py (likewise). Postfix is preseeded with "No configuration",
# so it never asks and configures no system mail: the tests start their own instance.
	@if [ "$$(id -u)" = 0 ]; then \
		missing=""; \
		[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
		[ -x /usr/sbin/dovecot ] || missing="$$missing dovecot-imapd"; \
		[ -x /usr/sbin/postfix ] || missing="$$missing postfix"; \
		[ -x /usr/bin/mutt ] || missing="$$missing mutt"; \
		if [ -n "$$missing" ]; then \
			echo "installing Debian packages:$$missing"; \
			{ echo "postfix postfix/main_mailer_type select No configuration" \
			    | debconf-set-selections \
			  && DEBIAN_FRONTEND=noninteractive apt-get -qq update \
			  && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
			     $$missing; } >/dev/null 2>&1 \
			|| echo "could not install:$$missing"; \
		fi; \
	fi
# Two workers (one a core), a module each at a time so module fixtures start once.
	$(BIN)/pytest -n auto --dist loadscope

bench: $(STAMP)
	$(BIN)/python -m bench.matching
	$(BIN)/python -m bench.tick
	$(BIN)/python -m bench.sending
	$(BIN)/python -m bench.coordinators
	$(BIN)/python -m bench.smtp_load
	$(BIN)/python -m bench.discussion

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
