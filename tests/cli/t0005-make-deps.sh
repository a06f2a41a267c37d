#!/usr/bin/env bash
# t0005 — `make deps` waits for the dpkg lock instead of failing when another apt runs
# (seen on a fresh machine where unattended upgrades held the lock at boot). Checked on the
# recipe make would run for a missing package (dry run: nothing is installed).
. "$CADDIE_SRC/tests/cli/lib.sh"

test_expect_success 'every apt-get call of make deps waits for the dpkg lock' '
    make -s -n -C "$CADDIE_SRC" deps EXTRA_PKGS=caddie-no-such-package >recipe &&
    test_grep "apt-get" recipe &&
    calls=$(grep -o "SUDO apt-get[^&|;]*" recipe | grep -Ec " (update|install)") &&
    waits=$(grep -o "SUDO apt-get[^&|;]*" recipe | grep -c "DPkg::Lock::Timeout=[0-9]") &&
    test "$calls" -ge 2 && test "$calls" = "$waits"
'
test_done
