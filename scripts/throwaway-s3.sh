#!/usr/bin/env bash
# Starts moto's S3-compatible server (its path in $PROMOTER_TEST_MOTO, installed
# from PyPI by scripts/test) on a free loopback port for the test process OWNER_PID,
# prints its endpoint, and returns once it answers. A watchdog stops the server
# when OWNER_PID exits.
#
#   scripts/throwaway-s3.sh OWNER_PID   ->   http://127.0.0.1:PORT
set -euo pipefail
owner=${1:?usage: throwaway-s3.sh OWNER_PID}
moto=${PROMOTER_TEST_MOTO:?PROMOTER_TEST_MOTO must name moto_server: run the tests through scripts/test}
log=$(mktemp -t throwaway-s3.XXXXXX)

port_is_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 20000))
    port_is_free "$port" || continue
    setsid "$moto" -H 127.0.0.1 -p "$port" </dev/null >"$log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
        if ! port_is_free "$port"; then
            # The watchdog's output goes nowhere, so whoever reads our stdout
            # sees it close now.
            (
                while [ -d "/proc/$owner" ] && kill -0 "$server" 2>/dev/null; do sleep 1; done
                kill "$server" 2>/dev/null || true
                rm -f "$log"
            ) </dev/null >/dev/null 2>&1 &
            disown
            echo "http://127.0.0.1:$port"
            exit 0
        fi
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    kill "$server" 2>/dev/null || true
done
echo "throwaway-s3: moto's server did not start; its log follows" >&2
cat "$log" >&2
rm -f "$log"
exit 1
