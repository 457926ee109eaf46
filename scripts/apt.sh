#!/usr/bin/env bash
# apt_install PACKAGE...: install Debian packages (no recommends), refreshing the index once if the first
# try fails; as root or through sudo ($SUDO). Sourced by the scripts that install a test dependency.

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "no apt-get here; install $* by hand" >&2
        return 1
    fi
    echo "==> installing $*"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 || {
        $SUDO apt-get update -q >/dev/null
        $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null
    }
}
