#!/usr/bin/env bash
# Lints and renders charts/shoal with the real Helm SDK (helm-python-sdk:
# Helm v4's Go SDK behind a C ABI; no helm binary can be installed here) and
# validates every rendered manifest with kubernetes-validate --strict
# against Kubernetes 1.30 and 1.33, for the value sets in charts/shoal/ci/;
# charts/shoal/tests/rejected-values.yaml must be rejected. See
# scripts/check_chart.py.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/install.sh

# Debian splits venv (and its pip) out of python3.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    ensure_debian_packages python3-venv
fi

# Pinned, in a venv of their own outside the clone (reused by later runs).
VENV="${SHOAL_CHART_VENV:-$HOME/.cache/shoal/chart-venv}"
REQUIREMENTS=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.3)

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m pip freeze 2>/dev/null | grep -qx 'helm-python-sdk==0.2.2' ||
    ! "$VENV/bin/python" -m pip freeze 2>/dev/null | grep -qx 'kubernetes-validate==1.37.0'; then
    "$VENV/bin/python" -m pip install --quiet "${REQUIREMENTS[@]}"
fi

exec "$VENV/bin/python" scripts/check_chart.py
