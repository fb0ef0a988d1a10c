# tarball_ok FILE: FILE is a tar archive of a root filesystem with python3 in it (not a
# directory, not truncated, not some other file under a .tar name).
# shellcheck shell=bash
tarball_ok() {
    # grep reads the whole listing: -q would stop tar with SIGPIPE, which pipefail counts.
    [ -f "$1" ] && [ -s "$1" ] && tar -tf "$1" 2>/dev/null | grep -x '\./usr/bin/python3' >/dev/null
}
