#!/usr/bin/env bash
# Install the Debian packages the tests need when they are missing: slurm-wlm and munge
# (tests/test_slurm.py starts a real one-node SLURM cluster) and git (tests/test_dvc.py).
# As root it runs apt-get itself, otherwise through sudo when sudo works without a password
# prompt; else it stops with one line saying what to run. `make test` and .ci/run both call it.
set -euo pipefail
packages=(slurm-wlm munge git)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
if ! command -v apt-get >/dev/null; then
    echo "error: the tests need ${missing[*]} (Debian packages) and this machine has no apt-get;" \
        "install them with your package manager, then rerun" >&2
    exit 1
fi
if [[ $(id -u) == 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "error: the tests need the Debian packages ${missing[*]}; run" \
        "'sudo apt-get install -y ${missing[*]}', then rerun" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
