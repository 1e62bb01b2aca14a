# Sourced by scripts/test and scripts/demo: the project's virtualenv, made or reused.
#
# Debian and Ubuntu mark their system Python "externally managed" (PEP 668): `pip install`
# outside a virtualenv is refused. So the scripts never run pip on the system Python; they
# create .venv (or reuse it) and put it first on PATH, and pip, ruff, mypy, pytest and
# exfil-monitor all come from there. Debian ships `venv` without `ensurepip` unless
# python3-venv is installed: as root that package is installed here, otherwise the
# message says what to install.
#
#   EXFIL_PYTHON  the interpreter to make the virtualenv with (default: python3)

# use_venv DIR: create DIR as a virtualenv unless a working one is there; activate it.
use_venv() {
  local venv=$1 py=${EXFIL_PYTHON:-python3}
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    _activate "$venv"
    return 0
  fi
  if ! command -v "$py" >/dev/null 2>&1; then
    echo "error: $py not found; install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3 python3-venv)" >&2
    return 1
  fi
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: exfil-monitor needs Python 3.11 or newer; $py is $("$py" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown)." >&2
    echo "       Give another interpreter with EXFIL_PYTHON=/path/to/python3.11" >&2
    return 1
  fi
  if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    local pkg
    pkg=$(_venv_package "$py")
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "== installing $pkg ($py cannot create virtualenvs without it)" >&2
      apt-get update -qq >/dev/null || true
      if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; then
        echo "error: could not install $pkg; install it and run this again" >&2
        return 1
      fi
    else
      echo "error: $py cannot create virtualenvs: install $pkg first, then run this again:" >&2
      echo "       sudo apt-get install $pkg" >&2
      return 1
    fi
  fi
  rm -rf "$venv"  # a half-made one from an interrupted run
  if ! "$py" -m venv "$venv"; then
    rm -rf "$venv"
    echo "error: $py -m venv $venv failed" >&2
    return 1
  fi
  _activate "$venv"
}

# pip_install SPEC...: pip install into the active virtualenv, skipped when the same
# specs were installed after pyproject.toml and setup.py last changed.
pip_install() {
  local stamp="$VIRTUAL_ENV/.installed-$(printf '%s ' "$@" | cksum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt setup.py ]; then
    return 0
  fi
  python -m pip install --quiet --disable-pip-version-check "$@"
  touch "$stamp"
}

_activate() {
  VIRTUAL_ENV=$(cd "$1" && pwd)
  export VIRTUAL_ENV
  export PATH="$VIRTUAL_ENV/bin:$PATH"
  hash -r
}

# The Debian package that gives an interpreter ensurepip: python3-venv for the system's
# python3, python3.X-venv for a versioned one.
_venv_package() {
  case "$(basename "$1")" in
    python3) echo python3-venv ;;
    *) echo "python$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3)-venv" ;;
  esac
}
