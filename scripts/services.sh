#!/usr/bin/env bash
# Local PostgreSQL and Redis for development, tests and load tests.
#
#   scripts/services.sh start   install what is missing, start both (reuses running ones), print exports
#   scripts/services.sh stop    stop what `start` started
#   scripts/services.sh env     print the exports for the running services
#   scripts/services.sh status  say what runs where
#
# When LOYALTY_DATABASE_URL / LOYALTY_REDIS_URL are already set, that service is taken as external and left alone.
# Everything lives under .local/ (git-ignored). Ports are picked once, on free loopback ports, and remembered.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${LOYALTY_STATE_DIR:-$ROOT/.local}"
PG_DIR="$STATE_DIR/pg"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
REDIS_DIR="$STATE_DIR/redis"
PORTS_FILE="$STATE_DIR/ports.env"
PG_USER="loyalty"
PG_DB="loyalty"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_root() { [ "$(id -u)" = "0" ]; }

apt_install() {
    # Installs Debian packages only when missing; needs root (as on CI) or sudo.
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    local sudo=""
    as_root || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "could not install ${missing[*]}; install them by hand and retry"
}

pg_bin_dir() {
    local d
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
    done
    command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
    return 1
}

install_deps() {
    local need=()
    command -v redis-server >/dev/null || need+=(redis-server)
    [ -f /usr/include/hiredis/hiredis.h ] || need+=(libhiredis-dev)
    [ -f /usr/include/postgresql/libpq-fe.h ] || need+=(libpq-dev)
    command -v protoc >/dev/null || need+=(protobuf-compiler)
    pg_bin_dir >/dev/null || need+=(postgresql postgresql-contrib)
    [ ${#need[@]} -gt 0 ] && apt_install "${need[@]}"
    return 0
}

free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

load_ports() {
    PG_PORT=""; REDIS_PORT=""
    [ -f "$PORTS_FILE" ] && . "$PORTS_FILE"
    return 0
}

save_ports() {
    mkdir -p "$STATE_DIR"
    printf 'PG_PORT=%s\nREDIS_PORT=%s\n' "$PG_PORT" "$REDIS_PORT" > "$PORTS_FILE"
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user.
pg_owner() { if as_root; then echo postgres; else id -un; fi; }

run_as_pg() {
    if as_root; then
        su postgres -s /bin/bash -c "$*"
    else
        bash -c "$*"
    fi
}

pg_running() {
    local bin; bin="$(pg_bin_dir)"
    [ -f "$PG_DATA/PG_VERSION" ] && run_as_pg "'$bin/pg_ctl' -D '$PG_DATA' status" >/dev/null 2>&1
}

start_postgres() {
    if [ -n "${LOYALTY_DATABASE_URL:-}" ]; then
        log "PostgreSQL: using external LOYALTY_DATABASE_URL"
        return
    fi
    local bin; bin="$(pg_bin_dir)" || die "PostgreSQL binaries not found; install postgresql-15"
    if pg_running; then
        log "PostgreSQL: already running on 127.0.0.1:$PG_PORT"
        return
    fi
    [ -n "$PG_PORT" ] || PG_PORT="$(free_port)"
    save_ports
    mkdir -p "$PG_DATA" "$PG_RUN"
    if as_root; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        chown -R postgres: "$PG_DIR"
        # The postgres user must be able to walk down to the data folder.
        local d="$PG_DIR"
        while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d="$(dirname "$d")"; done
    fi
    chmod 700 "$PG_DATA"
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        log "PostgreSQL: initdb in $PG_DATA"
        run_as_pg "'$bin/initdb' -D '$PG_DATA' -U '$PG_USER' --auth=trust --encoding=UTF8 --locale=C.UTF-8" \
            > "$PG_RUN/initdb.log" 2>&1 || { cat "$PG_RUN/initdb.log" >&2; die "initdb failed"; }
        cat >> "$PG_DATA/postgresql.conf" <<CONF
# project-local development cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_RUN'
max_connections = 300
shared_buffers = 256MB
synchronous_commit = on
log_min_messages = warning
log_min_error_statement = panic
CONF
    fi
    log "PostgreSQL: starting on 127.0.0.1:$PG_PORT"
    run_as_pg "'$bin/pg_ctl' -D '$PG_DATA' -l '$PG_RUN/postgres.log' -o '-p $PG_PORT' -w -t 60 start" >/dev/null \
        || { tail -20 "$PG_RUN/postgres.log" >&2; die "PostgreSQL did not start; see $PG_RUN/postgres.log"; }
    if ! psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc "select 1 from pg_database where datname='$PG_DB'" | grep -q 1; then
        psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -qc "create database $PG_DB" >/dev/null
    fi
}

redis_running() {
    [ -n "$REDIS_PORT" ] && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

start_redis() {
    if [ -n "${LOYALTY_REDIS_URL:-}" ]; then
        log "Redis: using external LOYALTY_REDIS_URL"
        return
    fi
    if redis_running; then
        log "Redis: already running on 127.0.0.1:$REDIS_PORT"
        return
    fi
    [ -n "$REDIS_PORT" ] || REDIS_PORT="$(free_port)"
    save_ports
    mkdir -p "$REDIS_DIR"
    log "Redis: starting on 127.0.0.1:$REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --save '' --appendonly no \
        --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
        || die "Redis did not start; see $REDIS_DIR/redis.log"
    for _ in $(seq 1 50); do redis_running && return; sleep 0.1; done
    die "Redis did not answer PING on 127.0.0.1:$REDIS_PORT; see $REDIS_DIR/redis.log"
}

print_env() {
    load_ports
    if [ -n "${LOYALTY_DATABASE_URL:-}" ]; then
        echo "export LOYALTY_DATABASE_URL='$LOYALTY_DATABASE_URL'"
    elif [ -n "$PG_PORT" ]; then
        echo "export LOYALTY_DATABASE_URL='postgres://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable'"
    fi
    if [ -n "${LOYALTY_REDIS_URL:-}" ]; then
        echo "export LOYALTY_REDIS_URL='$LOYALTY_REDIS_URL'"
    elif [ -n "$REDIS_PORT" ]; then
        echo "export LOYALTY_REDIS_URL='redis://127.0.0.1:$REDIS_PORT'"
    fi
}

stop_all() {
    load_ports
    local bin
    if bin="$(pg_bin_dir)" && pg_running; then
        log "PostgreSQL: stopping"
        run_as_pg "'$bin/pg_ctl' -D '$PG_DATA' -m fast -w stop" >/dev/null || true
    fi
    if redis_running; then
        log "Redis: stopping"
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
}

status() {
    load_ports
    if pg_running; then echo "postgresql: running on 127.0.0.1:$PG_PORT"; else echo "postgresql: stopped"; fi
    if redis_running; then echo "redis: running on 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; fi
}

case "${1:-}" in
    start)
        install_deps
        load_ports
        start_postgres
        start_redis
        print_env
        ;;
    stop) stop_all ;;
    env) print_env ;;
    status) status ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
