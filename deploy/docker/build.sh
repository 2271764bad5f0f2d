#!/bin/sh
# The container image's build steps (Dockerfile), runnable outside Docker so CI checks them on every change:
#   sh deploy/docker/build.sh PREFIX SRC     e.g. sh deploy/docker/build.sh /opt/vask .
# Makes a virtual environment at PREFIX with Vask built from SRC as a wheel (with the PostgreSQL driver).
set -eu
PREFIX=${1:?usage: build.sh PREFIX SRC}
SRC=${2:?usage: build.sh PREFIX SRC}
python3 -m venv "$PREFIX"
WHEELS=$(mktemp -d)
"$PREFIX/bin/pip" install --no-cache-dir -q build
"$PREFIX/bin/python" -m build --wheel --outdir "$WHEELS" "$SRC" >/dev/null
"$PREFIX/bin/pip" install --no-cache-dir -q "$(ls "$WHEELS"/vask-*.whl)[postgres]"
"$PREFIX/bin/pip" uninstall -y -q build pyproject_hooks
rm -rf "$WHEELS"
"$PREFIX/bin/vask" --version
