# shellcheck shell=bash
# Shared by the end-to-end scripts (sourced, not run): bounded waiting and test output.

PATIENCE=60 # seconds; bounds every wait, measures nothing

pass() { echo "ok - $*"; }

# Runs "$@" until it succeeds, at most PATIENCE seconds.
eventually() {
    local deadline=$((SECONDS + PATIENCE))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}
