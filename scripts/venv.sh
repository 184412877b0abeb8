# Sourced by ./postroom-demo and ./run-tests: make the repository's virtual environment, .venv/.
#
# postroom is never installed into the system's Python: Debian and Ubuntu forbid it (PEP 668,
# "externally-managed-environment"), and a virtual environment works the same with the
# distribution's python3, macOS's, pyenv's or conda's. Only the python3 the caller names (or the
# first on PATH) is used, and it must be 3.11 or newer.

# ensure_venv NAME: .venv/bin/python with pip, or one sentence on stderr (prefixed with NAME) and exit 1.
ensure_venv() {
  local name=$1 python=${PYTHON:-python3}
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "$name: there is no $python on PATH; install Python 3.11 or newer (Debian and Ubuntu: apt-get install python3)." >&2
    exit 1
  fi
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "$name: postroom needs Python 3.11 or newer, and $python is $("$python" -c 'import platform; print(platform.python_version())'); name another with PYTHON=/path/to/python3.11." >&2
    exit 1
  fi
  if [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; then
    return 0
  fi
  rm -rf .venv  # a half-made one (venv without pip) would fail later in a less clear way
  if "$python" -m venv .venv >/dev/null 2>&1; then
    return 0
  fi
  rm -rf .venv
  # Debian and Ubuntu ship venv's pip bootstrap in a package of its own.
  local package
  package="python$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$name: installing $package, which $python needs to make a virtual environment" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    if "$python" -m venv .venv >/dev/null 2>&1; then
      return 0
    fi
    rm -rf .venv
  fi
  echo "$name: $python cannot make a virtual environment; install its venv module (Debian and Ubuntu: apt-get install $package) and run this again." >&2
  exit 1
}
