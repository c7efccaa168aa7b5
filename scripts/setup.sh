#!/usr/bin/env bash
# Installs what monha's lab and tests need on a Debian/Ubuntu machine, as root: system packages
# and a virtualenv (.venv) holding monha with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root (the lab creates network namespaces and starts servers)" >&2
    exit 1
fi
packages=(
    mariadb-server mariadb-client          # a real primary and replica per node
    openssh-server openssh-client          # real sshd per node; asyncssh talks to it
    iproute2 iputils-ping iputils-arping   # namespaces, VIP moves, gratuitous ARP (not 'arping')
    nftables                               # packet-loss and link-cut faults
    zabbix-server-mysql                    # the cold-standby service, for real
    apache2                                # the hot-standby web tier
    mha4mysql-manager mha4mysql-node       # MHA 0.58, for the side-by-side benchmark
    procps psmisc util-linux curl ca-certificates
    debootstrap                            # Oracle MySQL's own root filesystem (see below)
    prometheus python3-yaml systemd         # promtool, the Zabbix template check, systemd-analyze
    python3 python3-venv python3-dev gcc
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # the other 'arping' package conflicts with iputils-arping and does not update ARP caches
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
# Oracle MySQL (Debian 12 has MariaDB only): Debian unstable's mysql-server-core in a root
# filesystem of its own, built once per machine under /var/cache/monha-lab (~40 s, 650 MB).
.venv/bin/python -c 'from monha.lab.mysql_rootfs import ensure_rootfs; ensure_rootfs()'
echo "setup.sh: ready (.venv/bin/monha, .venv/bin/monha-ctl, .venv/bin/monha-lab)"
