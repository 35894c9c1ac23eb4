#!/usr/bin/env bash
# Build (or reuse) the DGL *consumer* environment: real dgl 2.1.0 on torch 2.2.1 / Python 3.11.
#
# The product cannot import dgl (see pipeline/publish/dgl_format.py), so CI proves the files it
# writes with real DGL in this separate venv. The build takes ~3 min and ~5 GB the first time;
# afterwards it is reused as long as the marker holds the sha256 of the requirements file.
#
#   ACMMG_DGL_VENV    where the venv lives (default ~/.cache/acmmg/dgl-consumer-venv);
#                     point CI's cache at this path to reuse it between runs
#   ACMMG_DGL_PYTHON  the Python 3.11 interpreter to build it from (default: python3.11 on
#                     PATH, else pyenv's or /usr/bin's)
#
# Prints the venv's python executable as the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
req="$here/dgl-consumer-requirements.txt"
venv="${ACMMG_DGL_VENV:-$HOME/.cache/acmmg/dgl-consumer-venv}"
py="${ACMMG_DGL_PYTHON:-}"
if [ -z "$py" ]; then
    for candidate in python3.11 "$HOME/.pyenv/versions/3.11"*/bin/python3.11 /usr/bin/python3.11; do
        if command -v "$candidate" >/dev/null 2>&1; then py="$candidate"; break; fi
    done
    py="${py:-python3.11}"
fi
want=$(sha256sum "$req" | cut -d' ' -f1)
marker="$venv/.acmmg-requirements.sha256"

ready() { [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && [ -x "$venv/bin/python" ]; }

if ready; then
    echo "$venv/bin/python"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
# One builder at a time (parallel test runs share the cache path).
exec 9>"$venv.lock"
flock 9
if ready; then
    echo "$venv/bin/python"
    exit 0
fi

if ! command -v "$py" >/dev/null 2>&1; then
    echo "dgl_consumer_env: $py not found; set ACMMG_DGL_PYTHON to a Python 3.11 interpreter" >&2
    exit 3
fi
version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)
if [ "$version" != "3.11" ]; then
    echo "dgl_consumer_env: $py is Python $version; dgl 2.1.0 wheels need 3.11 (set ACMMG_DGL_PYTHON)" >&2
    exit 3
fi

# A half-built venv (no marker) is thrown away, never patched.
rm -rf "$venv"
echo "dgl_consumer_env: building $venv (first time: ~3 min, ~5 GB)" >&2
"$py" -m venv "$venv"
cert_args=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cert_args=(--cert /etc/ssl/certs/ca-certificates.crt)
fi
# --isolated: ignore this machine's pip config (find-links/extra indexes) so the registry's
# wheels are used, exactly as pinned.
"$venv/bin/python" -m pip install --isolated --disable-pip-version-check --no-input \
    "${cert_args[@]}" -r "$req" >&2
DGLBACKEND=pytorch "$venv/bin/python" -c 'import dgl, torch, pandas, pyarrow, PIL; print("dgl", dgl.__version__, "torch", torch.__version__)' >&2
echo "$want" > "$marker"
echo "$venv/bin/python"
