#!/usr/bin/env bash
# Creates .venv-paradex, the environment the Paradex venue runs in, and installs
# requirements-paradex.txt into it (with --dev also the test tools, requirements-paradex-dev.txt).
#
# paradex-py needs starknet-crypto-py, published as a Linux x86-64 wheel for CPython 3.10 only,
# so this environment is CPython 3.10: python3.10 on PATH, else the newest 3.10 under pyenv.
# Run from anywhere: bash scripts/paradex_env.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=requirements-paradex.txt
case "${1:-}" in
    "") ;;
    --dev) requirements=requirements-paradex-dev.txt ;;
    *) echo "usage: bash scripts/paradex_env.sh [--dev]" >&2; exit 2 ;;
esac

is_cpython310() {
    "$1" -c 'import platform, sys; sys.exit(not (sys.version_info[:2] == (3, 10) and platform.python_implementation() == "CPython"))' \
        >/dev/null 2>&1
}

find_python310() {
    local candidate
    # A pyenv shim named python3.10 exists even when 3.10 is not the active version (and then
    # fails), so every candidate is run, not just looked up.
    if candidate=$(command -v python3.10) && is_cpython310 "$candidate"; then
        echo "$candidate"
        return 0
    fi
    local roots=()
    [ -n "${PYENV_ROOT:-}" ] && roots+=("$PYENV_ROOT")
    command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root 2>/dev/null || true)")
    roots+=("$HOME/.pyenv")
    for root in "${roots[@]}"; do
        [ -d "$root/versions" ] || continue
        for candidate in $(ls -d "$root"/versions/3.10.* 2>/dev/null | sort -t. -k3 -n -r); do
            if is_cpython310 "$candidate/bin/python"; then
                echo "$candidate/bin/python"
                return 0
            fi
        done
    done
    return 1
}

if [ -x .venv-paradex/bin/python ] && is_cpython310 .venv-paradex/bin/python; then
    echo "paradex_env.sh: reusing .venv-paradex ($(.venv-paradex/bin/python --version))"
else
    if ! python=$(find_python310); then
        echo "paradex_env.sh: no CPython 3.10 found (python3.10 on PATH or under pyenv); install one (e.g. 'pyenv install 3.10') and run this again" >&2
        exit 1
    fi
    rm -rf .venv-paradex
    "$python" -m venv .venv-paradex
    echo "paradex_env.sh: created .venv-paradex with $python"
fi
.venv-paradex/bin/python -m pip install --quiet --upgrade pip
.venv-paradex/bin/python -m pip install --quiet -r "$requirements"
.venv-paradex/bin/python -c 'import importlib.metadata, paradex_py, starknet_crypto_py, websockets; print("paradex_env.sh: ready: paradex-py", importlib.metadata.version("paradex-py"), "websockets", websockets.__version__)'
echo "paradex_env.sh: run the bot with .venv-paradex/bin/python runbot.py --exchange paradex ..."
