"""The container image's Dockerfile, checked structurally (no hadolint, no Docker daemon here):
multi-stage, installs from the lock, no compiler and no root in the final stage, a writable
Numba cache, the health check on OIP liveness; and the build context it sees."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from dataclasses import dataclass, field

from tests.deploy.manifests import DEPLOY, ROOT

COMPILERS = ("build-essential", "gcc", "g++", "clang", "make", "cmake")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages of a Dockerfile (continuation lines joined, comments out)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "a continuation line ends the file"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages and op == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse((DEPLOY / "Dockerfile").read_text())


def test_multi_stage_from_a_pinned_slim_python() -> None:
    args, stages = dockerfile()
    assert [s.name for s in stages] == ["builder", "runtime"]
    for stage in stages:
        base = args[stage.base[2:-1]] if stage.base.startswith("${") else stage.base
        assert re.fullmatch(r"python:3\.1[1-9]-slim-\w+", base), base  # a tag, never latest
    runtime = stages[-1]
    copies = runtime.all("COPY")
    assert copies == ["--from=builder /opt/mlgate /opt/mlgate"]  # only the built environment


def test_dependencies_come_from_the_lock() -> None:
    _, stages = dockerfile()
    runs = " ".join(stages[0].all("RUN"))
    assert "pip install -c requirements.lock -r runtime.txt" in runs
    assert "pip install --no-deps ." in runs and "pip check" in runs
    assert "requirements.lock" in stages[0].all("COPY")[0]


def test_no_compiler_and_no_root_in_the_final_stage() -> None:
    _, stages = dockerfile()
    builder, runtime = stages
    assert any("build-essential" in r for r in builder.all("RUN"))  # where it belongs
    for run in runtime.all("RUN"):
        words = set(shlex.split(run.replace("&&", " ")))
        assert not words & set(COMPILERS), run
        assert "apt-get" not in words, "the final stage installs no packages"
    [user] = runtime.all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000  # numeric: Kubernetes can check runAsNonRoot
    ops = [op for op, _ in runtime.instructions]
    assert ops.index("USER") > max(i for i, op in enumerate(ops) if op == "RUN")


def test_numba_cache_is_writable_by_the_user_and_env_is_set() -> None:
    _, stages = dockerfile()
    runtime = stages[-1]
    env = " ".join(runtime.all("ENV"))
    assert "NUMBA_CACHE_DIR=/var/cache/mlgate/numba" in env
    assert "MLGATE_HOME=/var/lib/mlgate" in env and "MLGATE_CONFIG=/etc/mlgate/mlgate.toml" in env
    setup = " ".join(runtime.all("RUN"))
    assert "mkdir -p /var/lib/mlgate /var/cache/mlgate/numba" in setup
    assert "chown -R ${UID}:${UID} /var/lib/mlgate /var/cache/mlgate" in setup
    # the kernels are compiled into that cache at build time, and it stays the user's
    assert "mlgate kernels warm && chown -R ${UID}:${UID} /var/cache/mlgate" in setup
    assert any(a.startswith("UID=10001") for a in runtime.all("ARG"))


def test_healthcheck_ports_and_default_command() -> None:
    _, stages = dockerfile()
    runtime = stages[-1]
    [health] = runtime.all("HEALTHCHECK")
    assert "/v2/health/live" in health and "--start-period" in health
    [expose] = runtime.all("EXPOSE")
    assert expose.split() == ["8080", "8081", "9100", "9101"]
    [entry] = runtime.all("ENTRYPOINT")
    [cmd] = runtime.all("CMD")
    assert entry == '["mlgate"]'
    assert cmd == '["serve", "--role", "gateway", "--host", "0.0.0.0", "--port", "8080"]'


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or path.split("/")[0] == p for p in patterns)


def test_the_build_context_holds_every_package_and_no_local_state() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for state in (".git", ".venv", ".mlgate", "tests", "benchmarks"):
        assert _ignored(state, patterns), state
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for include in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = include.rstrip("*")
        if (ROOT / package).is_dir():
            assert not _ignored(package, patterns), package
    for needed in ("pyproject.toml", "requirements.lock", "README.md"):
        assert (ROOT / needed).is_file() and not _ignored(needed, patterns)


def test_the_lock_pins_every_runtime_dependency() -> None:
    """``pip install -c requirements.lock -r runtime.txt`` installs exact versions only if
    the lock names every runtime dependency of pyproject.toml (and their own are resolved
    from it too)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pinned = {
        re.split(r"[=<>;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith((" ", "#")) and "==" in line
    }
    for requirement in pyproject["project"]["dependencies"]:
        name = re.split(r"[=<>;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not pinned in requirements.lock"
