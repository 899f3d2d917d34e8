# shellcheck shell=bash
# Shared by the end-to-end suites (sourced, not run): bounded waiting, test output, the
# suite's Compose project and redis-cli in its services, and the counts the worker logged.
# A suite sets `project` and `compose_files` before it calls anything that runs Compose;
# one that runs no Compose project may set `on_failure` to what shows its state.

PATIENCE=60 # seconds; bounds every wait, measures nothing

pass() { echo "ok - $*"; }

# Prints why, then the state of what the suite runs (its Compose project's, unless it set
# `on_failure`), and ends the suite.
fail() {
    echo "FAIL: $*" >&2
    local show=${on_failure:-}
    [[ -n "$show" || -z "${project:-}" ]] || show=compose_state
    if [[ -n "$show" ]]; then "$show" >&2 || true; fi
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

# Fails at once, naming what is missing, unless a Docker engine answers.
need_docker() {
    docker info >/dev/null 2>&1 || {
        echo "FAIL: no Docker engine answers (docker info); $1 need one" >&2
        exit 1
    }
}

# The worker image under test (COUNTER_WORKER_IMAGE, or one built from this tree) and a
# redis:7 image (the local stand-in when there is none).
prepare_images() {
    COUNTER_WORKER_IMAGE=$(e2e/worker-image counter-worker:latest)
    export COUNTER_WORKER_IMAGE
    e2e/build-redis-standin
}

# docker compose on the suite's project and files; no call outlasts compose_timeout seconds.
# shellcheck disable=SC2154 # project and compose_files are the suite's
compose() {
    local file_args=() file
    for file in "${compose_files[@]}"; do file_args+=(--file "$file"); done
    timeout "${compose_timeout:-300}" docker compose --progress quiet \
        --project-name "$project" "${file_args[@]}" "$@"
}
compose_state() {
    compose ps --all || true
    compose logs --no-color --tail 30
}
compose_down() { compose down --volumes --remove-orphans >/dev/null 2>&1 || true; }

# redis-cli in service $1, logged in with the password file $2 (and the user $3).
cli_as() {
    local service=$1 password=$2 user=${3:-}
    shift 3
    compose_timeout=20 compose exec -T --env "PW=$password" --env "AS=$user" "$service" sh -c \
        'REDISCLI_AUTH=$(cat "/acl/$PW.password") exec redis-cli --no-auth-warning ${AS:+--user "$AS"} "$@"' \
        sh "$@" | tr -d '\r'
}
# redis-cli in service $1 as the operator (README, Docker Compose).
admin_cli() { cli_as "$1" admin admin "${@:2}"; }
value_on() { admin_cli "$1" get contador; }
role_of() { admin_cli "$1" role | sed -n 1p; }
role_is() { [[ "$(role_of "$1")" == "$2" ]]; }

# grep that reads all its input: `grep -q` may stop early and fail the pipeline that feeds
# it with SIGPIPE under pipefail.
contains() { grep "$@" >/dev/null; }
# Fails unless "$2" is a count (digits only): an empty answer is never compared.
need_number() { [[ "$2" =~ ^[0-9]+$ ]] || fail "$1 is '$2', not a number"; }

# Every count the worker replicas have logged, in log order.
logged_counts() {
    compose logs --no-color --no-log-prefix worker |
        sed -n 's/.*Contador atual: \([0-9][0-9]*\).*/\1/p'
}
counts_logged_over() { (($(logged_counts | wc -l) > $1)); }
last_logged() {
    local last
    last=$(logged_counts | tail -n 1)
    need_number "the last logged count" "$last"
    echo "$last"
}
# Fails unless each logged count is above the one before (one worker, never going back).
rising() {
    logged_counts | awk 'NR > 1 && $1 <= last {bad = 1} {last = $1} END {exit bad || NR == 0}' ||
        fail "the logged counts did not only rise: $(logged_counts | paste -sd ' ')"
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
