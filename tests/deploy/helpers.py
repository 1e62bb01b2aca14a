"""What the static checks of deploy/ share: paths, file readers, the tools they need, the
image's environment, and loading a shipped monitor config with the daemon's own loader.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_MONITOR = DEPLOY / "compose" / "monitor.yaml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
K8S = DEPLOY / "kubernetes"
DEBIAN_PACKAGE = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}
TOKEN_VAR = "EXFIL_MONITOR_HTTP__AUTH_TOKEN_FILE"

# problem message (as monitor.config reports it today) -> a config snippet using the key
def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def required_tool(name: str) -> str:
    """The path of a tool the checks need: skip without it, but fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed (Debian: apt-get install -y {DEBIAN_PACKAGE[name]})"
        if on_ci():
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason)
    return path


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kw)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends with a line continuation"
    return out


def dockerfile_env() -> dict[str, str]:
    """The runtime stage's ENV, as the container sees it."""
    env: dict[str, str] = {}
    stage = ""
    for word, rest in dockerfile_instructions():
        if word == "FROM":
            stage = rest.split()[-1]
            env = {}
        elif word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    assert stage == "runtime", "the last stage of the Dockerfile should be the runtime"
    return env


def image_env(**extra: str) -> dict[str, str]:
    """The image's exfil-monitor variables, and what a deployment adds on top."""
    env = {k: v for k, v in dockerfile_env().items() if k.startswith("EXFIL_MONITOR_")}
    env.update(extra)
    return env


def compose_mounts(service: str) -> dict[str, Path]:
    """container path -> host path, for a compose service's bind mounts."""
    out = {}
    for vol in load_yaml(COMPOSE)["services"][service].get("volumes", ()):
        src, target = vol.split(":")[:2]
        if src.startswith((".", "/")):
            out[target] = (DEPLOY / src).resolve()
    return out


def with_token_file(env: Mapping[str, str], tmp_path: Path) -> dict[str, str]:
    """``env`` with the token file, a path inside the container, replaced by a local file
    holding a placeholder: the config then loads here as it would in the container."""
    out = dict(env)
    if TOKEN_VAR in out:
        token = tmp_path / "http-token"
        token.write_text("placeholder-token\n", encoding="utf-8")
        out[TOKEN_VAR] = str(token)
    return out


def load_monitor_config(path: Path, environ: Mapping[str, str]) -> Config:
    """``load_config``, failing the test with every problem when the file does not load."""
    try:
        return load_config(path, environ=environ)
    except ConfigError as exc:
        raise AssertionError(f"{path.name} does not load:\n" + "\n".join(map(str, exc.problems))) from None
