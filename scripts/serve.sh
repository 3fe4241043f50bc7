# shellcheck shell=bash
# Sourced by the scripts that start servers for a run (S3, registries, the Docker daemon): start
# one on a free port, retrying when the port is lost, and stop them. Defines free_port, serve,
# stop and stop_servers; PIDS holds the servers started.

PIDS=()

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether process PID listens on PORT itself (ss, from iproute2).
listens() { # pid port
    ss -Hltnp "sport = :$2" 2>/dev/null | grep -q "pid=$1,"
}

# Stops processes (TERM, then KILL after 5 s) and forgets them.
stop() { # pid...
    local pid remaining=()
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        [[ " $* " == *" $pid "* ]] || remaining+=("$pid")
    done
    PIDS=("${remaining[@]}")
}

stop_servers() { stop "${PIDS[@]}"; }

# serve NAME LOG PROBE START [ARG...]: starts a server on a free port and waits until it
# answers. `START PORT ARG...` runs in the background, its output in LOG, and must exec the
# server (so that the process started is the server); `PROBE PORT` succeeds once it answers.
# A port free when picked can be taken before the server binds it: when the server exits, or
# what answers on the port is not the server, it is stopped and started again on another port,
# up to 5 times; then serve prints the last try's log and fails. Sets SERVED_PORT.
serve() {
    local name=$1 log=$2 probe=$3 start=$4 port pid tried=()
    shift 4
    command -v ss >/dev/null || { echo "==> $name: serve needs ss (Debian's iproute2)" >&2; return 1; }
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        tried+=("$port")
        "$start" "$port" "$@" >"$log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        for _ in $(seq 100); do
            if "$probe" "$port" >/dev/null 2>&1 && listens "$pid" "$port"; then
                # shellcheck disable=SC2034 # read by the script that sourced this one
                SERVED_PORT=$port
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        stop "$pid"
    done
    printf '==> %s did not start (ports tried: %s); its log:\n' "$name" "${tried[*]}" >&2
    cat "$log" >&2 || true
    return 1
}
