# netdiag: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NETDIAG := $(VENV)/bin/netdiag
INSTALLED := $(VENV)/.installed-dev
NETLAB := scripts/netlab

.PHONY: demo test lint format bench man clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# A short real run of the main job. Inside the lab (as root): a loopback /24
# where half the hosts are dead, with its map, and an ARP sweep of the lab's
# Ethernet segment (198.18/15 is the lab's own there, anyone's outside it).
# Without the lab every loopback address answers, so the map would show
# nothing: the demo shows loss and RTTs instead, with -n (no name is looked up
# on the machine's resolver) and `dns` only for what /etc/hosts answers.
demo: $(INSTALLED)
	@$(NETLAB) --or-bare sh -c '\
	  if [ -n "$$NETLAB_LAN_IFACE" ]; then \
	    echo "\$$ netdiag sweep --alive --map 127.3.0.0/24"; $(NETDIAG) sweep --alive --map 127.3.0.0/24; \
	    echo; echo "\$$ netdiag sweep -n 198.18.0.0/28 198.18.0.250-254 198.18.15.254"; \
	    $(NETDIAG) sweep -n 198.18.0.0/28 198.18.0.250-254 198.18.15.254; \
	    echo; echo "\$$ netdiag port 127.3.0.1-4 -p 7,22,80 --grid -t 0.3"; $(NETDIAG) port 127.3.0.1-4 -p 7,22,80 --grid -t 0.3; \
	    echo; echo "\$$ netdiag dns alias.auth.test @127.0.0.2 @127.0.0.3"; $(NETDIAG) dns alias.auth.test @127.0.0.2 @127.0.0.3; \
	  else \
	    echo "(no lab here: run as root for the half-alive map and the LAN sweep)"; \
	    echo "\$$ netdiag sweep -n -c 3 -i 0.1 127.0.0.1 ::1"; $(NETDIAG) sweep -n -c 3 -i 0.1 127.0.0.1 ::1; \
	    echo; echo "\$$ netdiag port 127.0.0.1 ::1 -p ssh,http,https"; $(NETDIAG) port 127.0.0.1 ::1 -p ssh,http,https; fi; \
	  echo; echo "\$$ netdiag service ssh 53/udp http"; $(NETDIAG) service ssh 53/udp http; \
	  echo; echo "\$$ netdiag dns localhost 127.0.0.1"; $(NETDIAG) dns localhost 127.0.0.1; \
	  exit 0'

# The whole suite, inside the lab (lab tests skip with a reason without it).
test: $(INSTALLED)
	$(NETLAB) --or-bare $(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict netdiag

# The manual page, made from the commands' own help (tests/test_cli.py keeps it current).
man: $(INSTALLED)
	$(PY) -m netdiag.manpage > docs/netdiag.1

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(INSTALLED)
	@for b in scripts/bench_*.py; do $(NETLAB) $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
