# Two commands on a fresh machine:
#   make demo   generate the embedded dataset, run every stage, print AP tables, draw boxes on real photos
#               (= `spp-det demo`; `spp-det --help` lists every command)
#   make test   run the test suite
# Both create .venv and install the package and its dependencies first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SPP    := $(VENV)/bin/spp-det
SHARED_REAL13 ?= ../shared/data/voc2007-test-real13/JPEGImages

.PHONY: venv demo demo-5scale demo-zf5 demo-combine demo-fc-options demo-rcnn timing test clean-demo

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(SPP) demo --photos $(SHARED_REAL13)

# The rest of the paper's method on the same generated data (each reuses the demo's proposals):
#   demo-5scale   the demo at 5 scales (conv5 at 480..1200, a scale per window), 1- vs 5-scale mAP
#   demo-zf5      ZF-5 pre-trained from scratch as an SPP classifier (multi-size), then detection
#   demo-combine  the Lite0 and Lite1 detectors combined (union of scored windows + NMS; then averaged)
demo-5scale: $(STAMP)
	$(SPP) run --config configs/demo.yaml
	$(SPP) run --config configs/demo_5scale.yaml
	$(SPP) compare runs/demo runs/demo_5scale

demo-zf5: $(STAMP)
	$(SPP) run --config configs/demo.yaml --stages dataset,proposals
	$(SPP) run --config configs/demo_zf5.yaml

demo-combine: $(STAMP)
	$(SPP) run --config configs/demo.yaml
	$(SPP) run --config configs/demo_lite1.yaml
	$(SPP) combine --configs configs/demo.yaml configs/demo_lite1.yaml --out runs/demo_combined
	$(SPP) combine --configs configs/demo.yaml configs/demo_lite1.yaml --mode average --out runs/demo_combined_average

# Speed (docs/BENCHMARKS.md):
#   demo-fc-options  the trained demo tested with truncated-SVD fc6/fc7 and with bf16 fc (mAP change)
#   demo-rcnn        the R-CNN baseline mode on the demo's data (hours on 2 CPU cores)
#   timing           per-part times of SPP 1-scale / 5-scale / R-CNN (ZF-5 shapes) on the 13 real photos
demo-fc-options: demo
	for v in svd bf16; do \
	  mkdir -p runs/demo_$$v && cp -r runs/demo/manifests runs/demo/finetune runs/demo/svm runs/demo/bbox_reg \
	    runs/demo/norms runs/demo_$$v/ && \
	  $(SPP) run --config configs/demo_$$v.yaml --stages test,eval || exit 1; \
	done
	$(SPP) compare runs/demo runs/demo_svd runs/demo_bf16

demo-rcnn: $(STAMP)
	$(SPP) run --config configs/demo.yaml
	$(SPP) run --config configs/demo_rcnn.yaml
	$(SPP) compare runs/demo runs/demo_rcnn

timing: $(STAMP)
	$(SPP) time --images $(SHARED_REAL13) --rcnn-windows 250 --out runs/timing_zf5

test: $(STAMP)
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf runs/demo runs/demo_5scale runs/demo_zf5 runs/demo_lite1 runs/demo_combined runs/demo_svd runs/demo_bf16 runs/demo_rcnn \
	  runs/timing_zf5 data/generated
