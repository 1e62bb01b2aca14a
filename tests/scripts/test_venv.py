"""scripts/venv.sh, which scripts/test and scripts/demo source: a project virtualenv on a
Debian-like machine whose system Python refuses `pip install` and may lack ensurepip.

The "system" here is a directory of fakes first on PATH: a python3 that refuses
`pip install` like an externally managed one and, until a fake apt-get "installs"
python3-venv, cannot import ensurepip; an `id` that says root or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_SH = REPO / "scripts" / "venv.sh"

PYTHON3 = """#!/bin/sh
case "$*" in
  *"pip install"*) echo "error: externally-managed-environment" >&2; exit 1 ;;
  *ensurepip*) [ -f "{root}/python3-venv-installed" ] || exit 1 ;;
  *"(3, 11)"*) [ -f "{root}/too-old" ] && exit 1 ;;
esac
exec {real} "$@"
"""
APT_GET = """#!/bin/sh
echo "$*" >> "{root}/apt-get.log"
case "$*" in *"install"*python3-venv*) touch "{root}/python3-venv-installed" ;; esac
"""


def system(tmp_path: Path, *, uid: int) -> dict[str, str]:
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, text in {"python3": PYTHON3, "apt-get": APT_GET, "id": f"#!/bin/sh\necho {uid}\n"}.items():
        (bin_ / name).write_text(text.format(root=tmp_path, real=sys.base_prefix + "/bin/python3"))
        (bin_ / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "EXFIL_PYTHON")}
    env["PATH"] = f"{bin_}:/usr/bin:/bin"
    return env


def use_venv(tmp_path: Path, env: dict[str, str], then: str = "") -> subprocess.CompletedProcess[str]:
    script = f'set -euo pipefail; source "{VENV_SH}"; use_venv "{tmp_path}/.venv"; {then}'
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)


@pytest.fixture
def base_python() -> None:
    if not Path(sys.base_prefix, "bin", "python3").exists():
        pytest.skip(f"no python3 under {sys.base_prefix}/bin to stand for the system's")


def test_the_fake_system_python_refuses_pip_install(tmp_path: Path, base_python: None) -> None:
    env = system(tmp_path, uid=1000)
    done = subprocess.run(["python3", "-m", "pip", "install", "x"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "externally-managed-environment" in done.stderr


@pytest.mark.slow  # makes a real virtualenv with pip: seconds, more on a busy machine
def test_as_root_it_installs_python3_venv_then_makes_and_reuses_the_venv(tmp_path: Path, base_python: None) -> None:
    env = system(tmp_path, uid=0)
    then = 'command -v python pip; python -c "import sys; print(sys.prefix)"; python -m pip --version'
    done = use_venv(tmp_path, env, then)
    assert done.returncode == 0, done.stderr
    venv = tmp_path / ".venv"
    python, pip, prefix, pip_version = done.stdout.splitlines()[:4]
    assert (python, pip, prefix) == (f"{venv}/bin/python", f"{venv}/bin/pip", str(venv))
    assert f"{venv}/lib/" in pip_version  # pip runs from the venv, not the refusing system
    log = (tmp_path / "apt-get.log").read_text().splitlines()
    assert any("install" in line and "python3-venv" in line for line in log), log
    assert "installing python3-venv" in done.stderr
    # run again: the venv is reused, nothing installed
    (venv / "kept").write_text("")
    (tmp_path / "apt-get.log").unlink()
    again = use_venv(tmp_path, env, "command -v python")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"{venv}/bin/python"
    assert (venv / "kept").exists() and not (tmp_path / "apt-get.log").exists()


def test_not_root_and_no_ensurepip_says_what_to_install(tmp_path: Path, base_python: None) -> None:
    env = system(tmp_path, uid=1000)
    done = use_venv(tmp_path, env)
    assert done.returncode == 1
    assert "cannot create virtualenvs: install python3-venv first" in done.stderr
    assert "sudo apt-get install python3-venv" in done.stderr
    assert not (tmp_path / ".venv").exists() and not (tmp_path / "apt-get.log").exists()


def test_a_too_old_python_is_named(tmp_path: Path, base_python: None) -> None:
    env = system(tmp_path, uid=0)
    (tmp_path / "too-old").write_text("")
    done = use_venv(tmp_path, env)
    assert done.returncode == 1
    assert "needs Python 3.11 or newer" in done.stderr and "EXFIL_PYTHON=" in done.stderr


def test_scripts_run_everything_from_the_venv() -> None:
    """No pip, pytest or tool from the system: each script activates .venv before any."""
    for name in ("test", "demo"):
        lines = (REPO / "scripts" / name).read_text().splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        body = text[text.index("use_venv .venv") :]
        before = text[: text.index("use_venv .venv")]
        assert "source scripts/venv.sh" in before
        assert "python3 -m pip" not in text and "pip install" not in before
        assert "python3 -m pytest" not in body
    assert (REPO / ".ci" / "run").read_text().strip().endswith("scripts/test")
