# inferd developer commands. `make serve` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXTRAS := onnx,torch,tensorflow,sklearn,xgboost,lightgbm,explain,postgres,jobs,ray,tracing,generative,cache,test,dev
ARGS ?=

.PHONY: bench-tools install system-deps perf-analyzer grpc-stubs serve test check format bench fuzz clean

install: $(STAMP)

# Re-runs only when pyproject.toml changes, so every target can depend on it cheaply.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

serve: install
	$(VENV)/bin/inferd serve $(ARGS)

# The tests start their own PostgreSQL cluster from Debian's packages, run Debian's Prometheus
# (with promtool) and Alertmanager for the metrics and alerting tests, and drive the status
# page in Debian's headless Chromium (chromium-driver for Selenium). Instant once installed.
system-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && \
	  command -v prometheus-alertmanager >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    prometheus prometheus-alertmanager)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
	@command -v redis-server >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)
	@command -v haproxy >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy)

# Triton's perf_analyzer, for the tests and benchmarks: the binary in the tritonclient 2.41.0
# wheel (newer PyPI builds need glibc 2.38), kept apart from the venv's newer tritonclient.
# It needs Debian's libb64 and a libcudart.so.12 that exists (it never uses CUDA).
PERF_DIR := $(VENV)/perf_analyzer
PERF_STAMP := $(PERF_DIR)/.installed-stamp

perf-analyzer: $(PERF_STAMP)

$(PERF_STAMP): $(STAMP)
	@dpkg -s libb64-0d >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libb64-0d)
	rm -rf $(PERF_DIR)
	$(PY) -m pip install --quiet --no-deps --target $(PERF_DIR) \
	  'tritonclient==2.41.0' 'nvidia-cuda-runtime-cu12>=12,<13'
	touch $(PERF_STAMP)

# Regenerate the gRPC protocol modules from src/inferd/protocol/_gen/*.proto.
grpc-stubs: install
	scripts/gen_grpc.sh $(PY)

test: install system-deps perf-analyzer
	$(PY) -m pytest $(ARGS)

check: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

bench: install perf-analyzer bench-tools
	$(PY) bench/serving.py $(ARGS)

# The benchmarks' C load generators, from Debian: wrk (HTTP) and h2load (gRPC, nghttp2-client).
bench-tools:
	@command -v wrk >/dev/null && command -v h2load >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client)

# Longer runs of the fuzz tests: the hypothesis HTTP fuzzer (FUZZ_EXAMPLES cases) and
# schemathesis over /openapi.json (FUZZ_PER_OPERATION cases for each operation).
FUZZ_EXAMPLES ?= 50000
FUZZ_PER_OPERATION ?= 1000
fuzz: install
	INFERD_FUZZ_RANDOM=1 INFERD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	INFERD_FUZZ_EXAMPLES_PER_OPERATION=$(FUZZ_PER_OPERATION) \
	$(PY) -m pytest tests/security/test_fuzz_http.py tests/security/test_fuzz_openapi.py -q $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
