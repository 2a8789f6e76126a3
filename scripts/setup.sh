#!/usr/bin/env bash
# Install everything tickwire needs on a Debian 12 host, idempotently:
#   1. preflight: root, Debian 12, kernel features (one clear message, exit 2);
#   2. Debian packages from scripts/debian-packages.txt that are missing;
#   3. the virtualenv (.venv) with the pinned Python dependencies (requirements.lock);
#   4. the BPF objects and the cffi extension (make build).
# A second run finds everything in place and installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"
say() { printf 'setup: %s\n' "$*"; }

# 1. Preflight needs only the standard library of the system Python.
if [ ! -x /usr/bin/python3 ]; then
    echo "setup: /usr/bin/python3 is missing: tickwire needs Debian 12's python3 (apt-get install python3)" >&2
    exit 2
fi
/usr/bin/python3 -c 'import sys; sys.path.insert(0, "appliance"); import preflight; sys.exit(preflight.main(["--stage", "setup"]))'

# 2. Debian packages: ask dpkg which are installed, install only the rest.
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' scripts/debian-packages.txt | grep -v '^$')
missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "Debian packages: all ${#wanted[@]} present"
fi

# 3. The virtualenv, on /usr/bin/python3 with system site packages so that bcc
#    (python3-bpfcc) imports. Pinned packages install into the venv and take
#    precedence over the system ones. A stamp holds the hash of the lock and of
#    pyproject.toml: when neither changed, pip is not run at all.
want_stamp=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
have_stamp=$(cat "$venv/.tickwire-stamp" 2>/dev/null || true)
if [ ! -x "$venv/bin/python" ]; then
    say "creating the virtualenv in .venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    have_stamp=""
fi
if [ "$want_stamp" != "$have_stamp" ]; then
    say "installing the pinned Python dependencies (requirements.lock)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input \
        --require-virtualenv -r requirements.lock
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input \
        --require-virtualenv --no-deps --no-build-isolation -e .
    echo "$want_stamp" > "$venv/.tickwire-stamp"
else
    say "virtualenv: up to date"
fi

# 4. Build: make only rebuilds what changed.
make --no-print-directory -s build
say "ready: $venv/bin/tickwire"
