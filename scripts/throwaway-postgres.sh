#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests and benchmarks.
#
#   scripts/throwaway-postgres.sh OWNER_PID
#
# Prints the server's URL (postgres://postgres@127.0.0.1:PORT/postgres) on stdout
# and returns once the server accepts connections. A watchdog stops the cluster and
# deletes its files when process OWNER_PID exits, so nothing outlives the test run.
# The cluster trades durability for speed (fsync off) unless PROMOTER_PG_DURABLE=1.
# It accepts TLS with a self-signed certificate (made with openssl) and plain
# connections alike.
set -euo pipefail

owner=${1:?usage: throwaway-postgres.sh OWNER_PID}

bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ ! -x "$bindir/initdb" ]; then
    echo "throwaway-postgres: no PostgreSQL server (initdb) found; install Debian's postgresql package (scripts/test does)" >&2
    exit 1
fi

# initdb refuses to run as root: run the server as the postgres system user then.
as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/promoter-pg.XXXXXX")
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
if ! as_server_user "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    exit 1
fi

# A self-signed certificate, so that tests can connect with sslmode=require as
# they would to a managed PostgreSQL service. Plain connections still work.
if ! openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$dir/server.key" -out "$dir/server.crt" >"$dir/openssl.log" 2>&1; then
    cat "$dir/openssl.log" >&2
    rm -rf "$dir"
    exit 1
fi
chmod 600 "$dir/server.key"
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/server.key" "$dir/server.crt"; fi

options="-c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=256MB"
options="$options -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
if [ "${PROMOTER_PG_DURABLE:-0}" != 1 ]; then
    options="$options -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 30000))
    port_is_free "$port" || continue
    if as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir $options" start >/dev/null 2>&1; then
        started=$port
        break
    fi
done
if [ -z "$started" ]; then
    echo "throwaway-postgres: the server did not start; its log follows" >&2
    cat "$dir/server.log" >&2 || true
    rm -rf "$dir"
    exit 1
fi

# The watchdog's output goes nowhere, so whoever reads our stdout sees it close now.
(
    while [ -d "/proc/$owner" ]; do sleep 1; done
    as_server_user "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
) </dev/null >/dev/null 2>&1 &
disown

echo "postgres://postgres@127.0.0.1:$started/postgres"
