#!/usr/bin/env bash
# System packages gatolab needs beyond Python: ffmpeg (mediapy videos) and the EGL /
# OSMesa libraries MuJoCo uses to render headless. Installs them with apt-get when
# missing and we are root; otherwise says what to install.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || need+=(libegl1)
ldconfig -p 2>/dev/null | grep -q 'libOSMesa.so' || need+=(libosmesa6)
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || need+=(libgl1)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the widget's browser test (selenium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "gatolab: installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "gatolab: missing system packages: ${need[*]}" >&2
  echo "gatolab: install them (e.g. 'sudo apt-get install ${need[*]}' or 'conda install -c conda-forge ffmpeg')." >&2
  echo "gatolab: videos and MuJoCo rendering will fail until then; everything else works." >&2
fi
