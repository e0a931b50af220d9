#!/usr/bin/env bash
# Installs the system programs the test suite talks to, when they are missing, and says so.
# PostgreSQL needs nothing here: the tests start the embedded server from the pgserver wheel
# (or use ENERGYMON_TEST_DATABASE_URL). The MQTT tests need a real Mosquitto broker binary.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "==> installing test dependencies from Debian packages: ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: ${need[*]} missing and apt-get is not available; install them by hand" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's package starts a system broker on port 1883; the tests start their own on free
# ports, and the demo prefers its own too, so the system service is stopped and disabled.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
echo "==> installed: ${need[*]}"
