#!/usr/bin/env bash
# Creates the virtual environment (if missing) and installs workbench into it.
# With an NVIDIA driver present the RAPIDS extra for the driver's CUDA major is added:
# CUDA 13 driver -> [gpu], CUDA 12 driver -> [gpu-cu12]; otherwise the CPU install.
set -euo pipefail
venv=${1:-.venv}
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
# The driver's CUDA version, read from libcuda itself (no CUDA toolkit needed).
cuda_major=$("$venv/bin/python" - <<'PY'
import ctypes
try:
    lib = ctypes.CDLL("libcuda.so.1")
    v = ctypes.c_int(0)
    print(v.value // 1000 if lib.cuDriverGetVersion(ctypes.byref(v)) == 0 else 0)
except OSError:
    print(0)
PY
)
extras="cpu,dev"
case "$cuda_major" in
  13) extras="gpu,dev" ;;
  12) extras="gpu-cu12,dev" ;;
  0) ;;
  *) echo "NVIDIA driver for CUDA $cuda_major: RAPIDS 26.10 needs CUDA 12 or 13; installing the CPU build" >&2 ;;
esac
echo "installing gpu-workbench[$extras] into $venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e ".[$extras]"
