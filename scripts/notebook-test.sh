#!/bin/bash
# The notebook tier: runs a small sweep (experiments/quickstart-sweep.yaml, fewer steps)
# with `steinlab sweep`, then executes analysis/notebook.ipynb on its index with nbconvert;
# any error in any notebook cell fails the tier. Installs Debian's nbconvert and ipykernel
# when missing (pandas and matplotlib come with scripts/bootstrap.sh). The executed notebook
# is left in build/notebook-test/ for inspection.
# Usage: scripts/notebook-test.sh   (STEINLAB_EXE overrides build/steinlab)
set -euo pipefail
cd "$(dirname "$0")/.."
EXE=${STEINLAB_EXE:-$PWD/build/steinlab}

packages=(python3-pandas python3-matplotlib jupyter-nbconvert python3-nbconvert python3-ipykernel)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "notebook-test: installing ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

out=build/notebook-test
rm -rf "$out"
mkdir -p "$out"
"$EXE" sweep experiments/quickstart-sweep.yaml steps=100 --jobs 2 --out "$out/sweep" \
    >"$out/sweep.txt" 2>&1 || { cat "$out/sweep.txt"; echo "notebook-test: the sweep failed"; exit 1; }
index=$(tail -1 "$out/sweep.txt" | sed -n 's/^index: //p')
echo "notebook-test: sweep done, $index"
# Debian's interpreter and kernel (the inline backend: figures stay in the executed notebook);
# PYDEVD_DISABLE_FILE_VALIDATION quiets a debugger notice.
STEINLAB_SWEEP_INDEX=$PWD/$out/sweep/index.h5 PYDEVD_DISABLE_FILE_VALIDATION=1 \
    /usr/bin/python3 -m nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
    --output-dir "$out" analysis/notebook.ipynb
echo "notebook-test: analysis/notebook.ipynb executed without errors ($out/notebook.ipynb)"
