"""Static checks for the deploy files: Dockerfile, .dockerignore, docker-compose.yml and deploy/.

No Docker engine or cluster is needed. The files are parsed and checked against each other and
against the application (core.platform.settings): queues, env names, ports, probes, start order, images.
Worker checks are driven by models.contract.ALL_QUEUES, so adding a queue there without its compose
service, k8s Deployment and KEDA ScaledObject fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
import threading
import tomllib
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ains.core.platform.settings import Settings
from ains.models.contract import ALL_QUEUES
from ains.models.search_attributes import ALL_KEYS

REPO = Path(__file__).resolve().parents[3]

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = REPO / "docker-compose.yml"
SETUP_SCRIPT = DEPLOY / "temporal" / "setup-search-attributes.sh"
HEALTHCHECK_SCRIPT = DEPLOY / "docker" / "healthcheck.py"

WORKER_METRICS_PORT_DEFAULT = int(Settings.model_fields["worker_metrics_port"].default)
WORKER_DRAIN_SECONDS_DEFAULT = float(Settings.model_fields["worker_shutdown_grace_seconds"].default)

# Name -> type as the temporal CLI spells it, from the keys the workflows set.
_CLI_TYPE = {"KEYWORD": "Keyword", "INT": "Int", "TEXT": "Text", "DOUBLE": "Double", "BOOL": "Bool"}
_CLI_TYPE |= {"DATETIME": "Datetime", "KEYWORD_LIST": "KeywordList"}
SEARCH_ATTRIBUTES = {key.name: _CLI_TYPE[key.indexed_value_type.name] for key in ALL_KEYS}

K8S_IMAGE = "ghcr.io/ains/ains"
COMPOSE_IMAGE = "ains"


# ----------------------------------------------------------------------------- helpers


def setting_default(name: str) -> Any:
    return Settings.model_fields[name].default


@cache
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict), "docker-compose.yml must be a mapping"
    return doc


def services() -> dict[str, dict[str, Any]]:
    svcs: dict[str, dict[str, Any]] = compose()["services"]
    return svcs


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def ains_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if str(svc.get("image", "")).split(":")[0] == COMPOSE_IMAGE}


def is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    if cmd is None:
        return []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def healthcheck_test(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list):
        return " ".join(str(t) for t in test)
    return str(test or "")


def duration_seconds(value: str | int) -> float:
    if isinstance(value, int | float):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"bad duration {value!r}"
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    return sum(float(n) * scale[u] for n, u in parts)


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or {"http": 80, "https": 443}[parts.scheme]


@cache
def k8s_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return tuple(docs)


def k8s(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_docs() if doc["kind"] == kind}


def kustomization() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return doc


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def configmap_env() -> dict[str, str]:
    (cm,) = k8s("ConfigMap").values()
    return {k: str(v) for k, v in cm["data"].items()}


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """Env a container sees: envFrom ConfigMaps first, then its own env entries."""
    env: dict[str, str] = {}
    configmaps = k8s("ConfigMap")
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update({k: str(v) for k, v in configmaps[source["configMapRef"]["name"]]["data"].items()})
    for item in container.get("env", []):
        env[item["name"]] = str(item.get("value", ""))
    return env


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


def worker_deployments() -> dict[str, dict[str, Any]]:
    """Queue short name -> k8s Deployment running `ains worker --queue <short>`."""
    found: dict[str, dict[str, Any]] = {}
    for deployment in k8s("Deployment").values():
        for container in pod_spec(deployment)["containers"]:
            args = container.get("args", [])
            if args[:1] == ["worker"]:
                assert args[1] == "--queue" and len(args) == 3, f"unexpected worker args {args}"
                assert args[2] not in found, f"two Deployments for queue {args[2]}"
                found[args[2]] = deployment
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def dockerfile_final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((negate, re.compile(regex + r"\Z")))
    return patterns


def excluded_from_build_context(path: str) -> bool:
    """Docker semantics: the last pattern matching the path or one of its parents wins."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in dockerignore_patterns():
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


# ----------------------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_python_311_slim_and_installs_the_project() -> None:
    instructions = dockerfile_instructions()
    args: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args.setdefault(name, value)
    bases = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            image = rest.split()[0]
            for name, value in args.items():
                image = image.replace("${" + name + "}", value).replace("$" + name, value)
            bases.append(image)
    assert bases and all(b == "python:3.11-slim" for b in bases), bases

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    minimum = re.match(r">=\s*(\d+)\.(\d+)", pyproject["project"]["requires-python"])
    assert minimum and (3, 11) >= (int(minimum[1]), int(minimum[2]))

    runs = " ; ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", runs), "the project must be installed with `pip install .`"


def test_dockerfile_runs_as_non_root_through_the_ains_console_script() -> None:
    final = dockerfile_final_stage()
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "ains" in pyproject["project"]["scripts"]
    (entrypoint,) = [json.loads(rest) for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert entrypoint[-1] == "ains", entrypoint
    assert entrypoint[0].endswith("tini"), "PID 1 must forward SIGTERM so workers can drain"

    exposed = {int(p) for keyword, rest in final if keyword == "EXPOSE" for p in rest.split()}
    assert {setting_default("api_port"), setting_default("demo_agent_port"), WORKER_METRICS_PORT_DEFAULT} <= exposed


def test_dockerfile_copies_exist_and_are_in_the_build_context() -> None:
    copies = [rest for keyword, rest in dockerfile_instructions() if keyword == "COPY" and "--from" not in rest]
    installed = {}
    for rest in copies:
        words = [w for w in rest.split() if not w.startswith("--")]
        *sources, dest = words
        for source in sources:
            if source == ".":
                continue
            assert (REPO / source).exists(), f"COPY source {source} does not exist"
            assert not excluded_from_build_context(source), f"COPY source {source} is excluded by .dockerignore"
            installed[dest] = source
    assert installed.get("/usr/local/bin/ains-healthcheck") == "deploy/docker/healthcheck.py"
    assert installed.get("/usr/local/bin/ains-temporal-setup") == "deploy/temporal/setup-search-attributes.sh"


def test_dockerignore_keeps_the_package_and_drops_local_state() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = list(pyproject["tool"]["setuptools"]["package-dir"].values())
    assert packages
    for needed in ["pyproject.toml", "README.md", *(f"{p}/__init__.py" for p in packages)]:
        assert not excluded_from_build_context(needed), f"{needed} must be in the build context"
    for dropped in [
        ".git/HEAD",
        ".venv/bin/python",
        ".env",
        ".ains/ains.db",
        "tests/unit/deploy/test_deploy_files.py",
        "core/__pycache__/settings.cpython-311.pyc",
        "deploy/k8s/secret.yaml",
        "docker-compose.yml",
    ]:
        assert excluded_from_build_context(dropped), f"{dropped} must not be sent to the Docker build"


# ----------------------------------------------------------------------------- compose


def test_compose_has_the_required_services() -> None:
    required = {
        "postgres",
        "redis",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "migrate",
        "api",
        "demo-agent",
        "prometheus",
        "grafana",
        *(f"worker-{short}" for short in ALL_QUEUES),
    }
    missing = required - set(services())
    assert not missing, f"missing compose services: {sorted(missing)}"

    assert services()["postgres"]["image"].startswith("postgres:15")
    assert services()["redis"]["image"].startswith("redis:7")
    assert services()["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert services()["temporal-ui"]["image"].startswith("temporalio/ui:")


def test_compose_runs_one_worker_per_queue() -> None:
    workers = {name for name in services() if name.startswith("worker-")}
    assert workers == {f"worker-{short}" for short in ALL_QUEUES}, "compose workers must match ALL_QUEUES"
    for short in ALL_QUEUES:
        svc = services()[f"worker-{short}"]
        assert svc["image"].split(":")[0] == COMPOSE_IMAGE
        assert command_of(svc) == ["worker", "--queue", short]
        env = env_of(svc)
        drain = float(env.get("AINS_WORKER_SHUTDOWN_GRACE_SECONDS", WORKER_DRAIN_SECONDS_DEFAULT))
        assert duration_seconds(svc.get("stop_grace_period", "10s")) > drain, (
            f"worker-{short}: stop_grace_period must exceed the drain time or Docker SIGKILLs draining workers"
        )
        metrics_port = int(env.get("AINS_WORKER_METRICS_PORT", WORKER_METRICS_PORT_DEFAULT))
        assert f"127.0.0.1:{metrics_port}/metrics" in healthcheck_test(svc)


def test_compose_commands_and_replicas() -> None:
    svcs = services()
    assert command_of(svcs["migrate"]) == ["migrate"]
    assert is_one_shot(svcs["migrate"]), 'migrate must be one-shot (restart: "no")'
    assert is_one_shot(svcs["temporal-setup"])
    assert command_of(svcs["api"]) == ["api"]
    assert svcs["api"]["deploy"]["replicas"] == 2
    demo = command_of(svcs["demo-agent"])
    assert demo[:2] == ["agent", "demo"]
    # It registers itself at the address the agents worker can reach, and binds on all interfaces.
    assert demo[2:] == ["--register", "http://demo-agent:8001/run"]
    assert svcs["demo-agent"]["environment"]["AINS_DEMO_AGENT_HOST"] == "0.0.0.0"
    assert "ains-temporal-setup" in svcs["temporal-setup"]["entrypoint"]
    for name, svc in ains_services().items():
        assert svc.get("build"), f"{name} uses the local ains image, so it must say how to build it"


def test_compose_shares_env_through_the_x_ains_env_anchor() -> None:
    raw = COMPOSE_FILE.read_text()
    assert re.search(r"^x-ains-env:\s*&ains-env\s*$", raw, re.M), "shared env must be the x-ains-env anchor"
    shared = {k: str(v) for k, v in compose()["x-ains-env"].items()}
    assert {"AINS_DATABASE_URL", "AINS_REDIS_URL", "AINS_TEMPORAL_ADDRESS", "AINS_TEMPORAL_NAMESPACE"} <= set(shared)
    for name, svc in ains_services().items():
        if name == "temporal-setup":
            continue
        env = env_of(svc)
        for key, value in shared.items():
            assert env.get(key) == value, f"{name}: {key} does not come from x-ains-env"


def test_compose_env_points_at_compose_services() -> None:
    shared = compose()["x-ains-env"]
    svcs = services()

    db = urlsplit(shared["AINS_DATABASE_URL"])
    assert db.scheme == "postgresql+asyncpg"
    assert (db.hostname, db.port) == ("postgres", 5432)
    pg = env_of(svcs["postgres"])
    assert db.username == pg["POSTGRES_USER"] and db.password == pg["POSTGRES_PASSWORD"]
    assert db.path.lstrip("/") == pg["POSTGRES_DB"]

    redis = urlsplit(shared["AINS_REDIS_URL"])
    assert redis.scheme == "redis" and redis.hostname == "redis" and (redis.port or 6379) == 6379

    address = shared["AINS_TEMPORAL_ADDRESS"]
    assert address == "temporal:7233"
    assert "7233:7233" in [str(p) for p in svcs["temporal"].get("ports", [])]
    namespace = shared["AINS_TEMPORAL_NAMESPACE"]
    setup_env = env_of(svcs["temporal-setup"])
    assert setup_env["TEMPORAL_ADDRESS"] == address and setup_env["TEMPORAL_NAMESPACE"] == namespace
    assert env_of(svcs["temporal-ui"])["TEMPORAL_ADDRESS"] == address
    assert env_of(svcs["temporal"]).get("DEFAULT_NAMESPACE", "default") == namespace


def test_compose_temporal_is_postgres_backed_with_the_ains_dynamic_config() -> None:
    temporal = services()["temporal"]
    env = env_of(temporal)
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgres"
    assert depends_on(temporal).get("postgres") == "service_healthy"

    mounts = {}
    for volume in temporal["volumes"]:
        source, target, *_ = str(volume).split(":")
        mounts[target] = source
    config_path = "/etc/temporal/" + env["DYNAMIC_CONFIG_FILE_PATH"]
    assert mounts.get(config_path) == "./deploy/temporal/dynamicconfig.yaml"

    # auto-setup skips database creation, so the postgres init script must create them for its user.
    assert env.get("SKIP_DB_CREATE") == "true"
    init_sql = "\n".join(p.read_text() for p in sorted((DEPLOY / "postgres" / "init").glob("*.sql")))
    user = env["POSTGRES_USER"]
    assert re.search(rf"CREATE ROLE {user}\b.*LOGIN", init_sql)
    for db in (env.get("DBNAME", "temporal"), env.get("VISIBILITY_DBNAME", "temporal_visibility")):
        assert re.search(rf"CREATE DATABASE {db} OWNER {user};", init_sql), f"init SQL must create {db}"
    pg_mounts = [str(v) for v in services()["postgres"]["volumes"]]
    assert "./deploy/postgres/init:/docker-entrypoint-initdb.d:ro" in pg_mounts


def test_compose_long_running_services_have_healthchecks() -> None:
    for name, svc in services().items():
        if is_one_shot(svc):
            continue
        check = svc.get("healthcheck") or {}
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        assert healthcheck_test(svc).strip(), f"{name}: long-running service without a healthcheck"
    assert "pg_isready" in healthcheck_test(services()["postgres"])
    assert "redis-cli ping" in healthcheck_test(services()["redis"])
    assert "cluster health" in healthcheck_test(services()["temporal"])


def test_compose_start_order() -> None:
    svcs = services()
    for name, svc in svcs.items():
        for dep, condition in depends_on(svc).items():
            assert dep in svcs, f"{name} depends on unknown service {dep}"
            if condition == "service_healthy":
                assert healthcheck_test(svcs[dep]), f"{name} waits for {dep} to be healthy, but it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert is_one_shot(svcs[dep]), f"{name} waits for {dep} to complete, but it restarts"

    expected = {
        "migrate": "service_completed_successfully",
        "temporal-setup": "service_completed_successfully",
        "temporal": "service_healthy",
        "redis": "service_healthy",
    }
    for name in ["api", *(f"worker-{short}" for short in ALL_QUEUES)]:
        deps = depends_on(svcs[name])
        for dep, condition in expected.items():
            assert deps.get(dep) == condition, f"{name} must wait for {dep}: {condition}"
    assert depends_on(svcs["migrate"]).get("postgres") == "service_healthy"
    assert depends_on(svcs["temporal-setup"]).get("temporal") == "service_healthy"

    # No cycles.
    order: list[str] = []
    pending = {name: set(depends_on(svc)) for name, svc in svcs.items()}
    while pending:
        ready = sorted(name for name, deps in pending.items() if deps <= set(order))
        assert ready, f"depends_on cycle among {sorted(pending)}"
        order.extend(ready)
        for name in ready:
            del pending[name]


def test_compose_ports_line_up_with_settings() -> None:
    svcs = services()
    shared = compose()["x-ains-env"]
    api_port = int(shared["AINS_API_PORT"])
    assert api_port == setting_default("api_port")
    assert f"127.0.0.1:{api_port}/ready" in healthcheck_test(svcs["api"])
    assert all(str(p).endswith(f":{api_port}") for p in svcs["api"]["ports"])
    assert url_port(shared["AINS_PUBLIC_API_URL"]) == api_port

    ui_port = setting_default("temporal_ui_port")
    assert ui_port == 8233
    ui = svcs["temporal-ui"]
    ui_container_port = int(env_of(ui).get("TEMPORAL_UI_PORT", 8080))
    assert f"{ui_port}:{ui_container_port}" in [str(p) for p in ui["ports"]]
    assert str(ui_container_port) in healthcheck_test(ui)
    assert url_port(shared["AINS_TEMPORAL_UI_URL"]) == ui_port

    demo_port = int(shared.get("AINS_DEMO_AGENT_PORT", setting_default("demo_agent_port")))
    assert demo_port == 8001
    assert f"127.0.0.1:{demo_port}/health" in healthcheck_test(svcs["demo-agent"])


def test_compose_bind_mounts_exist() -> None:
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing path {source}"


# ----------------------------------------------------------------------------- shared checks


def all_env_names() -> dict[str, set[str]]:
    """AINS_* names set anywhere in compose, k8s and the Dockerfile -> where."""
    names: dict[str, set[str]] = {}

    def add(name: str, where: str) -> None:
        if name.startswith("AINS_"):
            names.setdefault(name, set()).add(where)

    for key, value in compose().items():
        if key.startswith("x-") and isinstance(value, dict):
            for name in value:
                add(str(name), f"compose {key}")
    for svc_name, svc in services().items():
        for name in env_of(svc):
            add(name, f"compose {svc_name}")
    for file, doc in k8s_docs():
        for section in ("data", "stringData"):
            for name in doc.get(section) or {}:
                add(name, file)
        if doc["kind"] in {"Deployment", "Job"}:
            for container in pod_spec(doc)["containers"]:
                for item in container.get("env", []):
                    add(item["name"], file)
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            for name in re.findall(r"(AINS_[A-Z0-9_]+)=", rest):
                add(name, "Dockerfile")
    return names


def test_every_ains_env_name_is_a_settings_field() -> None:
    fields = {f"AINS_{name.upper()}" for name in Settings.model_fields}
    used = all_env_names()
    assert "AINS_DATABASE_URL" in used and "AINS_TEMPORAL_ADDRESS" in used
    unknown = {name: sorted(where) for name, where in used.items() if name not in fields}
    assert not unknown, f"AINS_* names that are not Settings fields (typo?): {unknown}"


def test_third_party_images_are_pinned() -> None:
    images: dict[str, str] = {}
    for name, svc in services().items():
        image = str(svc["image"])
        if image.split(":")[0] == COMPOSE_IMAGE:
            assert svc.get("build"), f"{name}: {image} must be built locally"
            continue
        images[f"compose {name}"] = image
    k8s_tags = set()
    for file, doc in k8s_docs():
        if doc["kind"] in {"Deployment", "Job"}:
            for container in pod_spec(doc).get("initContainers", []) + pod_spec(doc)["containers"]:
                image = container["image"]
                repo, _, tag = image.rpartition(":")
                if repo == K8S_IMAGE:
                    k8s_tags.add(tag)
                else:
                    images[f"{file} {container['name']}"] = image
    for where, image in images.items():
        name, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{where}: image {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{where}: image {image} is not pinned to a version"

    assert len(k8s_tags) == 1, f"k8s must run one ains image tag, found {sorted(k8s_tags)}"
    (tag,) = k8s_tags
    assert tag != "latest" and re.search(r"\d", tag)
    (override,) = [i for i in kustomization().get("images", []) if i["name"] == K8S_IMAGE]
    assert str(override["newTag"]) == tag


# ----------------------------------------------------------------------------- temporal


def test_dynamic_config_priority_levels_match_settings() -> None:
    config = yaml.safe_load((DEPLOY / "temporal" / "dynamicconfig.yaml").read_text())
    (entry,) = config["matching.priorityLevels"]
    levels = entry["value"]
    assert levels == 10 == setting_default("temporal_priority_levels")
    assert int(compose()["x-ains-env"].get("AINS_TEMPORAL_PRIORITY_LEVELS", levels)) == levels
    assert int(configmap_env().get("AINS_TEMPORAL_PRIORITY_LEVELS", levels)) == levels
    text = (DEPLOY / "temporal" / "dynamicconfig.yaml").read_text()
    assert re.search(r"^#.*priority", text, re.M | re.I), "explain the setting in a comment"


def test_setup_script_declares_every_search_attribute() -> None:
    text = SETUP_SCRIPT.read_text()
    block = re.search(r'SEARCH_ATTRIBUTES="(.*?)"', text, re.S)
    assert block
    declared = dict(line.split(":") for line in block[1].split())
    assert declared == SEARCH_ATTRIBUTES
    assert os.access(SETUP_SCRIPT, os.X_OK)


FAKE_TEMPORAL = """#!/bin/sh
# Fake `temporal` CLI: state lives in $FAKE_STATE; every call is logged.
echo "$*" >> "$FAKE_STATE/calls"
case "$1 $2 $3" in
  "operator cluster health") echo SERVING ;;
  "operator namespace describe") [ -f "$FAKE_STATE/namespace" ] ;;
  "operator namespace create") touch "$FAKE_STATE/namespace" ;;
  "operator search-attribute list")
      [ -f "$FAKE_STATE/namespace" ] || exit 1
      echo "  Name  Type"; cat "$FAKE_STATE/attributes" 2>/dev/null || true ;;
  "operator search-attribute create")
      shift 3; name=""; type=""
      while [ $# -gt 0 ]; do
        case "$1" in --name) name="$2"; shift ;; --type) type="$2"; shift ;; esac; shift
      done
      echo "  $name  $type" >> "$FAKE_STATE/attributes" ;;
  *) echo "unexpected: $*" >&2; exit 3 ;;
esac
"""


def run_setup_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SETUP_SCRIPT)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_setup_script_registers_namespace_and_attributes_idempotently(tmp_path: Path) -> None:
    fake = tmp_path / "temporal"
    fake.write_text(FAKE_TEMPORAL)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    state = tmp_path / "state"
    state.mkdir()
    env = {
        "TEMPORAL_CLI": str(fake),
        "FAKE_STATE": str(state),
        "AINS_TEMPORAL_ADDRESS": "temporal.example:7233",
        "AINS_TEMPORAL_NAMESPACE": "ains-test",
        "TEMPORAL_SETUP_TIMEOUT_SECONDS": "10",
    }

    first = run_setup_script(env)
    assert first.returncode == 0, first.stderr
    calls = (state / "calls").read_text().splitlines()
    assert all("--address temporal.example:7233" in c for c in calls), calls
    assert any(c.startswith("operator namespace create") and "--namespace ains-test" in c for c in calls)
    created = {}
    for call in calls:
        if call.startswith("operator search-attribute create"):
            assert "--namespace ains-test" in call
            words = call.split()
            created[words[words.index("--name") + 1]] = words[words.index("--type") + 1]
    assert created == SEARCH_ATTRIBUTES

    (state / "calls").unlink()
    second = run_setup_script(env)
    assert second.returncode == 0, second.stderr
    calls = (state / "calls").read_text().splitlines()
    assert not [c for c in calls if " create" in c], f"second run must change nothing: {calls}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- healthcheck script


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_healthcheck_script_exit_codes() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def check(*args: str) -> int:
        return subprocess.run(
            [sys.executable, str(HEALTHCHECK_SCRIPT), *args], capture_output=True, timeout=30
        ).returncode

    try:
        assert check(f"{base}/ok") == 0
        assert check(f"{base}/ready") == 1
    finally:
        server.shutdown()
        server.server_close()
    assert check(f"http://127.0.0.1:{free_port()}/health") == 1
    assert check() == 2


# ----------------------------------------------------------------------------- kubernetes


def test_k8s_manifests_are_well_formed_and_listed_in_kustomization() -> None:
    assert k8s_docs()
    for file, doc in k8s_docs():
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), file
    files = {p.name for p in K8S.iterdir() if p.is_file() and p.name != "kustomization.yaml"}
    resources = kustomization()["resources"]
    assert len(resources) == len(set(resources)), "duplicate kustomization resources"
    assert set(resources) == files, (
        f"kustomization.yaml out of sync: unlisted {sorted(files - set(resources))}, "
        f"missing {sorted(set(resources) - files)}"
    )
    (namespace,) = k8s("Namespace")
    assert kustomization()["namespace"] == namespace
    for _, doc in k8s_docs():
        assert doc["metadata"].get("namespace", namespace) == namespace


def test_k8s_env_sources_exist_and_secret_is_only_a_template() -> None:
    configmaps, secrets = k8s("ConfigMap"), k8s("Secret")
    for file, doc in k8s_docs():
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        spec = pod_spec(doc)
        assert spec.get("serviceAccountName", "ains") in k8s("ServiceAccount"), file
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, file
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, file
    for name, secret in secrets.items():
        assert "data" not in secret, f"{name}: use stringData placeholders, never encoded values"
        for key, value in secret["stringData"].items():
            assert "REPLACE_ME" in str(value), f"secret {name}.{key} must be a placeholder"

    env = configmap_env()
    assert env["AINS_ENVIRONMENT"] == "production"
    for secret_name in ("AINS_DATABASE_URL", "AINS_AGENT_SIGNING_SECRET"):
        assert secret_name not in env, f"{secret_name} belongs in the Secret, not the ConfigMap"
        assert any(secret_name in s["stringData"] for s in secrets.values())
    for s in secrets.values():
        if "AINS_DATABASE_URL" in s["stringData"]:
            assert s["stringData"]["AINS_DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_k8s_pods_are_non_root_and_hardened() -> None:
    users = [rest for keyword, rest in dockerfile_final_stage() if keyword == "USER"]
    image_uid = int(users[-1].split(":")[0])
    for file, doc in k8s_docs():
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True, file
        assert spec["securityContext"].get("runAsUser", image_uid) == image_uid, file
        for container in spec["containers"]:
            sc = container.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, file
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], file
            assert container.get("resources", {}).get("requests"), f"{file}: set resource requests"


def api_parts() -> tuple[dict[str, Any], dict[str, Any]]:
    (deployment,) = [d for d in k8s("Deployment").values() if pod_spec(d)["containers"][0].get("args") == ["api"]]
    return deployment, pod_spec(deployment)["containers"][0]


def test_k8s_api_ports_probes_service_hpa_pdb_line_up() -> None:
    deployment, container = api_parts()
    api_port = int(configmap_env()["AINS_API_PORT"])
    assert api_port == setting_default("api_port")
    container_ports = [int(p["containerPort"]) for p in container["ports"]]
    assert container_ports == [api_port]

    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in container:
            assert resolve_port(container, container[probe]["httpGet"]["port"]) == api_port, probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == api_port
    assert "replicas" not in deployment["spec"], "the HPA owns the API replica count"

    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()

    services_ = [s for s in k8s("Service").values() if s["spec"]["selector"].items() <= pod_labels.items()]
    assert len(services_) == 1, "exactly one Service must select the API pods"
    for port in services_[0]["spec"]["ports"]:
        assert resolve_port(container, port["targetPort"]) == api_port

    (hpa,) = k8s("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    assert container["resources"]["requests"]["cpu"], "CPU-based HPA needs a CPU request"

    (pdb,) = k8s("PodDisruptionBudget").values()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"].get("minAvailable", 0) < hpa["spec"]["minReplicas"], "PDB would block every drain"


def test_k8s_one_shot_jobs() -> None:
    jobs = k8s("Job")
    commands = {}
    for name, job in jobs.items():
        spec = pod_spec(job)
        assert spec["restartPolicy"] in {"Never", "OnFailure"}
        (container,) = spec["containers"]
        commands[name] = container.get("command", []) + container.get("args", [])
    assert ["migrate"] in commands.values(), "a Job must run `ains migrate`"
    assert any("ains-temporal-setup" in c for cmd in commands.values() for c in cmd), (
        "a Job must register the Temporal search attributes"
    )


def test_k8s_worker_deployment_and_keda_scaler_per_queue() -> None:
    workers = worker_deployments()
    assert set(workers) == set(ALL_QUEUES), "k8s worker Deployments must match ALL_QUEUES"
    scalers = k8s("ScaledObject")
    cm = configmap_env()
    for short, task_queue in ALL_QUEUES.items():
        deployment = workers[short]
        name = deployment["metadata"]["name"]
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        env = container_env(container)
        assert "replicas" not in deployment["spec"], f"{name}: KEDA owns the replica count"

        metrics_port = int(env.get("AINS_WORKER_METRICS_PORT", WORKER_METRICS_PORT_DEFAULT))
        assert metrics_port == WORKER_METRICS_PORT_DEFAULT
        assert metrics_port in [int(p["containerPort"]) for p in container["ports"]]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == metrics_port
        assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"
        probe = container["livenessProbe"]["httpGet"]
        assert resolve_port(container, probe["port"]) == metrics_port

        drain = float(env.get("AINS_WORKER_SHUTDOWN_GRACE_SECONDS", WORKER_DRAIN_SECONDS_DEFAULT))
        assert spec["terminationGracePeriodSeconds"] > drain, (
            f"{name}: terminationGracePeriodSeconds must exceed the {drain}s drain"
        )

        targeting = [s for s in scalers.values() if s["spec"]["scaleTargetRef"]["name"] == name]
        assert len(targeting) == 1, f"exactly one ScaledObject must target {name}"
        scaler = targeting[0]
        assert scaler["apiVersion"] == "keda.sh/v1alpha1"
        assert scaler["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        assert scaler["spec"].get("minReplicaCount", 0) >= 1, f"{name}: keep a poller on the queue"
        assert scaler["spec"]["maxReplicaCount"] >= scaler["spec"]["minReplicaCount"]
        (trigger,) = scaler["spec"]["triggers"]
        assert trigger["type"] == "temporal"
        meta = trigger["metadata"]
        assert meta["taskQueue"] == task_queue
        assert meta["endpoint"] == cm["AINS_TEMPORAL_ADDRESS"]
        assert meta["namespace"] == cm["AINS_TEMPORAL_NAMESPACE"]
        assert int(meta["targetQueueSize"]) > 0
        assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values must be strings"

    assert len(scalers) == len(ALL_QUEUES), "ScaledObject for a queue that is not in ALL_QUEUES"


# ----------------------------------------------------------------------------- prometheus / grafana


def test_prometheus_scrapes_api_and_every_worker() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets: set[tuple[str, int]] = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port)))
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                targets.add((host, int(sd["port"])))
    for host, _ in targets:
        assert host in services() or host in {"127.0.0.1", "localhost"}, f"scrape target {host} is not a service"
    api_port = int(compose()["x-ains-env"]["AINS_API_PORT"])
    assert ("api", api_port) in targets
    for short in ALL_QUEUES:
        port = int(env_of(services()[f"worker-{short}"]).get("AINS_WORKER_METRICS_PORT", WORKER_METRICS_PORT_DEFAULT))
        assert (f"worker-{short}", port) in targets, f"worker-{short} is not scraped"
    mounts = [str(v) for v in services()["prometheus"]["volumes"]]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def grafana_mounts() -> dict[str, str]:
    out = {}
    for volume in services()["grafana"]["volumes"]:
        source, target, *_ = str(volume).split(":")
        out[target] = source
    return out


def provisioned_datasource_uid() -> str:
    files = sorted((DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.y*ml"))
    sources = [ds for f in files for ds in yaml.safe_load(f.read_text())["datasources"]]
    (prometheus,) = [ds for ds in sources if ds["type"] == "prometheus"]
    url = urlsplit(prometheus["url"])
    assert url.hostname == "prometheus" and url.hostname in services()
    assert f"{url.port}:{url.port}" in [str(p) for p in services()["prometheus"]["ports"]]
    return str(prometheus["uid"])


def test_grafana_provisioning_is_mounted() -> None:
    mounts = grafana_mounts()
    assert mounts.get("/etc/grafana/provisioning") == "./deploy/grafana/provisioning"
    provider_files = sorted((DEPLOY / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"))
    (provider,) = [p for f in provider_files for p in yaml.safe_load(f.read_text())["providers"]]
    dashboards_dir = provider["options"]["path"]
    assert mounts.get(dashboards_dir) == "./deploy/grafana/dashboards"
    home = env_of(services()["grafana"]).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert home.startswith(dashboards_dir + "/")
        assert (DEPLOY / "grafana" / "dashboards" / home.removeprefix(dashboards_dir + "/")).is_file()


def test_grafana_dashboards_have_a_query_in_every_panel() -> None:
    uid = provisioned_datasource_uid()
    dashboards = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    expressions: list[str] = []
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        assert dashboard.get("uid") and dashboard.get("title")
        panels = list(dashboard["panels"])
        for panel in list(panels):
            panels.extend(panel.get("panels", []))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in panels:
            if panel["type"] == "row":
                continue
            where = f"{path.name} panel {panel.get('title')!r}"
            assert panel.get("gridPos"), where
            assert panel["datasource"]["uid"] == uid, f"{where}: unknown datasource"
            assert panel.get("targets"), f"{where}: no query"
            for target in panel["targets"]:
                expr = target.get("expr", "").strip()
                assert expr, f"{where}: empty query"
                for open_, close in ("()", "[]", "{}"):
                    assert expr.count(open_) == expr.count(close), f"{where}: unbalanced {open_}{close}"
                assert target.get("datasource", {"uid": uid})["uid"] == uid
                expressions.append(expr)
    joined = "\n".join(expressions)
    for metric in [
        "ains_http_requests_total",
        "ains_http_request_duration_seconds_bucket",
        "ains_tasks_created_total",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        # AINS domain metrics (core.platform.metrics), served by each worker on AINS_WORKER_METRICS_PORT
        "ains_tasks_by_type",
        "ains_task_queue_wait_seconds_bucket",
        "ains_task_duration_seconds_bucket",
        "ains_agent_calls_total",
        "ains_agent_call_errors_total",
        "ains_routing_decisions_total",
        "ains_trust_changes_total",
        "ains_webhook_delivery_attempts_total",
    ]:
        assert metric in joined, f"no panel queries {metric}"
    assert re.search(r"\bains_tasks\b(?!_)", joined), "no panel queries the ains_tasks gauge"
    assert re.search(r"histogram_quantile\(0\.95,[^\n]*ains_http_request_duration_seconds_bucket", joined)
    # Every API replica reports the same DB-wide ains_tasks counts: summing replicas would double them.
    tasks_queries = re.findall(r"(\w+) by \(status\) \(ains_tasks\)", joined)
    assert tasks_queries, "ains_tasks must be broken down by status"
    assert set(tasks_queries) <= {"max", "min", "avg"}, "combine ains_tasks across replicas with max, not sum"


# ----------------------------------------------------------------------------- secrets


def k8s_secret_env() -> dict[str, str]:
    (secret,) = k8s("Secret").values()
    return {k: str(v) for k, v in secret["stringData"].items()}


def _settings_from_env(env: dict[str, str]) -> Settings:
    fields = {name.removeprefix("AINS_").lower(): value for name, value in env.items() if value != ""}
    return Settings.model_validate({k: v for k, v in fields.items() if k in Settings.model_fields})


def test_k8s_secret_placeholders_cannot_reach_production() -> None:
    """The shipped Secret holds placeholders: a production process started with them refuses to run."""
    env = {**configmap_env(), **k8s_secret_env()}
    assert env["AINS_ENVIRONMENT"] == "production"
    with pytest.raises(ValueError, match="outside development"):
        _settings_from_env(env)
    for name in k8s_secret_env():  # each placeholder on its own is refused
        real = {k: v.replace("REPLACE_ME", "s3cr3t-0123456789abcdef") for k, v in k8s_secret_env().items()}
        with pytest.raises(ValueError, match=name):
            _settings_from_env({**configmap_env(), **real, name: k8s_secret_env()[name]})
    real = {k: v.replace("REPLACE_ME", "s3cr3t-0123456789abcdef") for k, v in k8s_secret_env().items()}
    assert _settings_from_env({**configmap_env(), **real}).environment == "production"


def test_compose_production_needs_real_secrets() -> None:
    """docker-compose.yml's defaults are for development only: with AINS_ENVIRONMENT=production they are refused."""
    env = {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in compose()["x-ains-env"].items()}
    env["AINS_ENVIRONMENT"] = "production"
    with pytest.raises(ValueError, match="outside development"):
        _settings_from_env(env)
