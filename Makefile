# Two commands set everything up on a fresh clone: `make demo` and `make test`.
# Both install from requirements.lock (exact versions, resolved from pyproject.toml's ranges),
# so a fresh clone measures and tests what we measured and tested; `make upgrade` moves the lock.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: demo test test-fast bench lint docs proto lock upgrade clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The install also compiles, once: Python's bytecode (an installer may skip it, and with
# PYTHONDONTWRITEBYTECODE set no process writes it, so each would compile scikit-learn's and
# scipy's sources again: seconds per process) and every numba kernel family into numba's
# on-disk cache (`mlgate kernels warm`), so that the first serve, registration or monitor
# pass compiles nothing.
#
# The lock is installed by uv (its version pinned in the lock): a cold install of the ~200
# packages took 6.7 s with uv against 108 s with pip on our 2-core machine. uv reads its own
# index settings (UV_INDEX_URL, uv.toml), not pip.conf: where it cannot install, pip does.
$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install -q "$$(grep -m1 '^uv==' $(LOCK))"
	$(VENV)/bin/uv pip install -q --python $(PY) -r $(LOCK) || $(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	-$(PY) -m compileall -q -j 0 $(VENV)/lib registry gateway monitor trainer mlgate kernels dashboard > /dev/null
	$(VENV)/bin/mlgate kernels warm
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mlgate demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -x

# The scaled-out topology as separate processes: S3 server, two gateways, monitor (, trainer).
topology: $(STAMP)
	$(PY) -m pytest tests/e2e/test_topology.py -q

# Triton's perf_analyzer (from the tritonclient 2.41 wheel) joins the gRPC benchmark when it can
# be fetched; without it the benchmarks run and say how to get it.
bench: $(STAMP)
	-$(PY) -m benchmarks.perf_analyzer install
	$(PY) -m benchmarks.run_all

lint: $(STAMP)
	$(VENV)/bin/ruff check registry gateway monitor trainer mlgate kernels dashboard tests benchmarks
	$(VENV)/bin/ruff format --check registry gateway monitor trainer mlgate kernels dashboard tests benchmarks
	$(VENV)/bin/mypy

docs: $(STAMP)
	$(PY) -m mlgate.reference

# Regenerate the OIP gRPC messages from gateway/grpc/proto/oip.proto. Built into a private
# descriptor pool, so that other `inference` protos (tritonclient's, KServe's) can share a process.
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Igateway/grpc/proto --python_out=gateway/grpc --pyi_out=gateway/grpc \
		gateway/grpc/proto/oip.proto
	sed -i 's/_descriptor_pool\.Default()\.AddSerializedFile(/_descriptor_pool.DescriptorPool().AddSerializedFile(/' \
		gateway/grpc/oip_pb2.py

# Re-resolve every pinned version within pyproject.toml's ranges (uv, from PyPI).
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--upgrade --quiet --output-file $(LOCK)

# Move to the newest versions the ranges allow, reinstall, and rerun the tests and benchmarks,
# so that a dependency that moves a figure is caught here, not by a user.
upgrade: lock
	$(VENV)/bin/uv pip install -q --python $(PY) -r $(LOCK)
	touch $(STAMP)
	$(MAKE) test
	$(MAKE) bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .mlgate
