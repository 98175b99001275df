#!/usr/bin/env bash
# A local MLflow tracking server on PostgreSQL, for trying the shared-server set-up:
#
#   scripts/mlflow_server.sh start    # PostgreSQL + `mlflow server`, both on 127.0.0.1
#   scripts/mlflow_server.sh status   # exit 0 when both answer
#   scripts/mlflow_server.sh stop
#
# Then point the project at it with `export MLFLOW_TRACKING_URI=http://127.0.0.1:5000`.
# The server proxies the artifacts (--serve-artifacts), so clients need no access to
# the artifact folder. Everything lives under VAEBENCH_SERVER_DIR (default
# <project>/.mlflow-server): pgdata/ (the database cluster, with its log), artifacts/,
# mlflow.log and mlflow.pid. PostgreSQL trusts connections because it listens on the
# loopback interface only; a server shared between machines needs real authentication.
#
# Settings (environment): VAEBENCH_SERVER_DIR, VAEBENCH_PG_PORT (5433),
# VAEBENCH_MLFLOW_HOST (127.0.0.1), VAEBENCH_MLFLOW_PORT (5000),
# VAEBENCH_MLFLOW_WORKERS (2), VAEBENCH_MLFLOW_START_S (180: how long to wait for it),
# MLFLOW (the mlflow command), PG_BIN (the folder of initdb and pg_ctl).
# Needs PostgreSQL's server programs (Debian: apt-get install postgresql) and the
# Python driver (pip install -e ".[server]"). Run as root, the database runs as the
# `postgres` user, which must be able to reach VAEBENCH_SERVER_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${VAEBENCH_SERVER_DIR:-$ROOT/.mlflow-server}
PG_PORT=${VAEBENCH_PG_PORT:-5433}
HOST=${VAEBENCH_MLFLOW_HOST:-127.0.0.1}
PORT=${VAEBENCH_MLFLOW_PORT:-5000}
WORKERS=${VAEBENCH_MLFLOW_WORKERS:-2}
START_S=${VAEBENCH_MLFLOW_START_S:-180}
MLFLOW=${MLFLOW:-mlflow}
PGDATA=$DIR/pgdata
PIDFILE=$DIR/mlflow.pid
URL=http://$HOST:$PORT

die() { echo "mlflow_server.sh: error: $*" >&2; exit 2; }

pg_bin() {
    if [[ -n ${PG_BIN:-} ]]; then echo "$PG_BIN"; return; fi
    if command -v pg_ctl >/dev/null; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return; fi
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $found ]] || die "PostgreSQL's server programs (initdb, pg_ctl) not found; install them \
(Debian: apt-get install -y postgresql) or set PG_BIN to their folder"
    echo "$found"
}

# The database cluster must not run as root: as root, run it as the `postgres` user.
as_pg() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

server_pid() {
    [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && cat "$PIDFILE"
}

healthy() { curl -fsS --max-time 3 "$URL/health" >/dev/null 2>&1; }

start_postgres() {
    local bin; bin=$(pg_bin)
    [[ -x $bin/initdb && -x $bin/pg_ctl ]] || die "$bin has no initdb/pg_ctl; set PG_BIN"
    if [[ ! -f $PGDATA/PG_VERSION ]]; then
        mkdir -p "$PGDATA"
        [[ $(id -u) == 0 ]] && chown postgres: "$PGDATA"
        chmod 700 "$PGDATA"
        as_pg test -w "$PGDATA" || die "$PGDATA: the postgres user cannot write there; \
choose a VAEBENCH_SERVER_DIR whose parent folders it can enter"
        as_pg "$bin/initdb" -D "$PGDATA" -U mlflow --auth=trust -E UTF8 >"$DIR/initdb.log" \
            || die "initdb failed; see $DIR/initdb.log"
    fi
    if ! as_pg "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
            -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PGDATA" start >/dev/null \
            || die "PostgreSQL did not start; see $PGDATA/server.log"
    fi
    local exists
    exists=$("$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U mlflow -d postgres -tAc \
             "SELECT 1 FROM pg_database WHERE datname = 'mlflow'")
    [[ $exists == 1 ]] || "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U mlflow mlflow
    echo "PostgreSQL: postgresql://mlflow@127.0.0.1:$PG_PORT/mlflow (data in $PGDATA)"
}

start() {
    mkdir -p "$DIR/artifacts"
    start_postgres
    if server_pid >/dev/null; then
        echo "MLflow server already running (pid $(cat "$PIDFILE")) at $URL"
        return
    fi
    healthy && die "something else already answers at $URL; set VAEBENCH_MLFLOW_PORT"
    command -v "$MLFLOW" >/dev/null || die "the mlflow command ($MLFLOW) is not found; set MLFLOW"
    # its own session (process group), so `stop` ends the server with all its workers
    setsid "$MLFLOW" server --backend-store-uri "postgresql://mlflow@127.0.0.1:$PG_PORT/mlflow" \
        --artifacts-destination "$DIR/artifacts" --serve-artifacts \
        --host "$HOST" --port "$PORT" --workers "$WORKERS" \
        >"$DIR/mlflow.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    local waited=0
    until healthy; do
        server_pid >/dev/null || { tail -n 20 "$DIR/mlflow.log" >&2; die "mlflow server exited; \
see $DIR/mlflow.log"; }
        (( waited++ < START_S )) || die "mlflow server did not answer at $URL within ${START_S} s"
        sleep 1
    done
    echo "MLflow server: $URL (pid $(cat "$PIDFILE"), artifacts in $DIR/artifacts, log $DIR/mlflow.log)"
    echo "export MLFLOW_TRACKING_URI=$URL"
}

stop() {
    local pid
    if pid=$(server_pid); then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
        echo "MLflow server stopped"
    fi
    rm -f "$PIDFILE"
    if [[ -f $PGDATA/PG_VERSION ]]; then
        local bin; bin=$(pg_bin)
        if as_pg "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
            as_pg "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
            echo "PostgreSQL stopped"
        fi
    fi
}

status() {
    local ok=0
    if server_pid >/dev/null && healthy; then
        echo "MLflow server: up at $URL (pid $(cat "$PIDFILE"))"
    else
        echo "MLflow server: down"; ok=3
    fi
    if [[ -f $PGDATA/PG_VERSION ]] && as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
        echo "PostgreSQL: up on 127.0.0.1:$PG_PORT"
    else
        echo "PostgreSQL: down"; ok=3
    fi
    return $ok
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
