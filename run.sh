#!/usr/bin/env bash
# gate-edge set-up and entry point for people and CI.
#
#   ./run.sh demo     set everything up, then run the demo checkpoint (gate-edge demo)
#   ./run.sh test     set everything up, then run ruff, mypy and the full test suite
#   ./run.sh setup    only set up (system packages, .venv, Python packages)
#
# Works on a fresh Debian 12 / Ubuntu 22.04+ machine with Python 3.11+. System packages are
# installed with apt-get (as root, or through sudo). Nothing is downloaded at run time: the
# plate models ship in the repository and the OCR model inside the rapidocr wheel.
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="${GATE_EDGE_VENV:-$ROOT/.venv}"
# faketime: libfaketime, for the clock-step tests (tests/reliability/test_disk_and_clock.py)
APT_PACKAGES=(mosquitto chromium fonts-dejavu-core fonts-noto-cjk udev faketime)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

install_system_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ! find_python >/dev/null || ! "$(find_python)" -c 'import venv, ensurepip' 2>/dev/null; then
        missing+=(python3 python3-venv)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "please install: ${missing[*]} (no apt-get on this machine)"
        return 1
    fi
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing system packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

install_python_packages() {
    local extras=$1
    local python
    python=$(find_python) || { say "Python 3.11 or newer is required"; exit 1; }
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtual environment $VENV"
        "$python" -m venv "$VENV"
    fi
    # A stamp per pyproject.toml version and set of extras; a wider set satisfies a narrower.
    local prefix
    prefix="$VENV/.gate-edge-$(sha1sum pyproject.toml | cut -c1-12)"
    local have extra ok
    for have in "$prefix"-*; do
        [ -f "$have" ] || continue
        ok=1
        for extra in ${extras//,/ }; do
            case ",$(cat "$have")," in *",$extra,"*) ;; *) ok=0 ;; esac
        done
        [ "$ok" = 1 ] && return 0
    done
    say "installing gate-edge and its Python packages ($extras)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
    rm -f "$VENV"/.gate-edge-*
    echo "$extras" > "$prefix-${extras//,/-}"
}

cmd=${1:-help}
[ $# -gt 0 ] && shift
case "$cmd" in
    setup)
        install_system_packages
        install_python_packages "dev,train"
        ;;
    demo)
        install_system_packages
        install_python_packages "dev"
        exec "$VENV/bin/gate-edge" demo "$@"
        ;;
    test)
        install_system_packages
        install_python_packages "dev,train"
        say "ruff"
        "$VENV/bin/ruff" check edge gate_controller simulators tests benchmarks training
        say "mypy (core packages)"
        "$VENV/bin/mypy"
        say "pytest"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        [ "$cmd" = help ] || exit 2
        ;;
esac
