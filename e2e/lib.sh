# shellcheck shell=bash
# Shared by the end-to-end scripts (sourced, not run): bounded waiting and test output.

PATIENCE=60 # seconds; bounds every wait, measures nothing

pass() { echo "ok - $*"; }

# A suite with more to show on failure (logs, containers) defines its own.
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Runs "$@" until it succeeds, at most PATIENCE seconds.
eventually() {
    local deadline=$((SECONDS + PATIENCE))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# A free port on 127.0.0.1, below the kernel's range for outgoing connections.
free_port() {
    python3 - <<'PYTHON'
import random, socket
for port in random.sample(range(20000, 32000), 50):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
PYTHON
}

# Starts Debian's docker-registry (distribution 2.8: no OCI referrers API) on a free loopback
# port, storing under DIR, and waits until it answers. Sets `registry` (127.0.0.1:PORT) and
# `registry_pid`, for stop_registry; returns 1, saying why, if it does not start.
registry=
registry_pid=
start_registry() {
    local dir=$1 port
    port=$(free_port)
    [[ -n "$port" ]] || {
        echo "no free loopback port for the registry" >&2
        return 1
    }
    mkdir -p "$dir"
    cat >"$dir/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
http:
  addr: 127.0.0.1:$port
YAML
    docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    registry_pid=$!
    registry=127.0.0.1:$port
    local _
    for _ in $(seq 100); do
        curl --silent --fail "http://$registry/v2/" >/dev/null && return 0
        kill -0 "$registry_pid" 2>/dev/null || {
            echo "the registry exited: $(cat "$dir/registry.log")" >&2
            return 1
        }
        sleep 0.1
    done
    echo "the registry on $registry did not answer" >&2
    return 1
}

stop_registry() {
    if [[ -n "${registry_pid:-}" ]]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
}
