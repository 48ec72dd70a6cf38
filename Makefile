# netdiag: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NETDIAG := $(VENV)/bin/netdiag
INSTALLED := $(VENV)/.installed-dev
NETLAB := scripts/netlab

.PHONY: demo test lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# A short real run of the main job: a sweep of a loopback /24 with its map,
# inside the lab when it can be built (half the hosts there are dead), and
# there an ARP sweep of the lab's Ethernet segment (only inside the lab:
# 198.18/15 is the lab's own there, and may be anything's outside it).
demo: $(INSTALLED)
	@$(NETLAB) --or-bare sh -c '\
	  echo "\$$ netdiag sweep --alive --map 127.3.0.0/24"; $(NETDIAG) sweep --alive --map 127.3.0.0/24; \
	  if [ -n "$$NETLAB_LAN_IFACE" ]; then \
	    echo; echo "\$$ netdiag sweep -n 198.18.0.0/28 198.18.0.250-254 198.18.15.254"; \
	    $(NETDIAG) sweep -n 198.18.0.0/28 198.18.0.250-254 198.18.15.254; fi; \
	  echo; echo "\$$ netdiag service ssh 53/udp http"; $(NETDIAG) service ssh 53/udp http; \
	  echo; echo "\$$ netdiag dns localhost 127.0.0.1"; $(NETDIAG) dns localhost 127.0.0.1; \
	  exit 0'

# The whole suite, inside the lab (lab tests skip with a reason without it).
test: $(INSTALLED)
	$(NETLAB) --or-bare $(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(INSTALLED)
	@for b in scripts/bench_*.py; do $(NETLAB) $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
