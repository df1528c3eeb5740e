#!/bin/sh
# The whole laxmon test suite on a fresh Debian machine with the Rust toolchain:
# installs what the tests talk to (PostgreSQL server binaries, Debian's
# monitoring-plugins, OpenSSH, an SMTP sink, iproute2, Chromium and
# chromedriver), then runs every test.
# Tests start their own servers on loopback or in network namespaces they
# create; set LAXMON_TEST_DATABASE_URL to use an existing PostgreSQL instead.
set -eu
cd "$(dirname "$0")/.."

need=""
have() { command -v "$1" >/dev/null 2>&1 || [ -e "$1" ]; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
have /usr/lib/nagios/plugins/check_dummy || need="$need monitoring-plugins-basic monitoring-plugins-standard"
have /usr/lib/nagios/plugins/check_http || need="$need monitoring-plugins-standard"
have /usr/sbin/sshd || need="$need openssh-server"
have ssh || need="$need openssh-client"
have ip || need="$need iproute2"
have ps || need="$need procps"
have script || need="$need bsdutils"
have openssl || need="$need openssl"
# The dashboard's browser tests (tests/support/browser.rs).
have /usr/lib/chromium/chromium || need="$need chromium"
have /usr/bin/chromedriver || need="$need chromium-driver"
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need="$need python3 python3-aiosmtpd"
# The cluster-stack tools (tests/stack_tools.rs): LVM on a loop device, a
# userspace iSCSI target, iscsiadm, virsh's test driver, drbdsetup.
have vgcreate || need="$need lvm2"
have tgtd || need="$need tgt"
have iscsiadm || need="$need open-iscsi"
have virsh || need="$need libvirt-clients"
have drbdsetup || need="$need drbd-utils"
if [ -n "$need" ]; then
    echo "tests/run.sh: installing:$need" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
    # Debian starts a PostgreSQL and an sshd on install; the tests run their own.
fi

exec cargo test --lib --bins --tests "$@"
