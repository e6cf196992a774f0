# Two commands on a fresh machine:
#   make demo   generate the embedded dataset, run every stage, print AP tables, draw boxes on real photos
#   make test   run the test suite
# Both create .venv and install the package and its dependencies first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SHARED_REAL13 ?= ../shared/data/voc2007-test-real13/JPEGImages

.PHONY: venv demo test clean-demo

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) tools/run_pipeline.py --config configs/demo.yaml
	$(PY) tools/demo.py --workdir runs/demo --images data/generated/VOCdevkit/VOC2007 --split test --limit 8 \
	  --out runs/demo/demo_test_images
	@if [ -d "$(SHARED_REAL13)" ]; then \
	  $(PY) tools/demo.py --workdir runs/demo --images $(SHARED_REAL13) --out runs/demo/demo_images; \
	else echo "($(SHARED_REAL13) not found: skipping the real-photo demo)"; fi

test: $(STAMP)
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf runs/demo data/generated
