# Starting and stopping the two servers tests/nextcloud/ compares, from bash: nginx + php-fpm
# (tests/nextcloud/nginx.conf.in, php-fpm.conf.in) and rr with examples/nextcloud/worker.php.
# Sourced by bench/nextcloud/run and tests/nextcloud/clients.sh; the Rust suite has its own
# (tests/nextcloud/harness.rs).
#
# The caller sets: NC (the Nextcloud root), WORKERS (PHP processes of each server), TMP (a
# scratch directory), RR_SO (the extension), TEMPLATES (this directory), FPM_BIN, SERVER_PIN
# (an array, a command prefix such as `taskset -c 1`, or empty), PIDS (an array), and defines
# warn(). start_fpm and start_rr set PORT and MASTER and append what they start to PIDS.

stop() { # pid: SIGTERM, then SIGKILL to its group after 10 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # port pid name log
    local i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$2" 2>/dev/null || { warn "$3 exited; last lines of $4:"; tail -n 30 "$4"; return 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    warn "$3 did not listen on $1 within 60 s"
    tail -n 30 "$4"
    return 1
}

# The PHP processes that serve requests: the children of the fpm master / of the rr master.
worker_pids() { ps -o pid= --ppid "$1" | tr -d ' ' | sort -n; }
# kB: RSS, and private (clean + dirty) from smaps_rollup, summed over the workers.
rss_kb() { local p t=0; for p in $1; do t=$((t + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$t"; }
private_kb() { local p t=0; for p in $1; do t=$((t + $(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s + 0}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0))); done; echo "$t"; }

# Opcache's sizes, the same for both servers (larger than PHP's defaults:
# 8 MB of interned strings, 128 MB, 10,000 scripts).
OPCACHE_ARGS=(-d opcache.interned_strings_buffer=32 -d opcache.memory_consumption=256
    -d opcache.max_accelerated_files=20000)

start_fpm() { # sets PORT, MASTER
    local d="$TMP/fpm" user=""
    mkdir -p "$d"
    PORT=$(free_port)
    [[ $EUID == 0 ]] && user="user root;"
    sed -e "s#@USER@#$user#; s#@WORKERS@#1#; s#@MASTER@#off#; s#@DIR@#$d#g; s#@PORT@#$PORT#; s#@ROOT@#$NC#; s#@FPM_SOCK@#$d/php-fpm.sock#" \
        "$TEMPLATES/nginx.conf.in" >"$d/nginx.conf"
    sed -e "s#@DIR@#$d#g; s#@CHILDREN@#$WORKERS#; s#@FPM_SOCK@#$d/php-fpm.sock#" \
        "$TEMPLATES/php-fpm.conf.in" >"$d/php-fpm.conf"
    local args=(-F -y "$d/php-fpm.conf" -d opcache.enable=1 "${OPCACHE_ARGS[@]}")
    [[ $EUID == 0 ]] && args+=(-R)
    setsid "${SERVER_PIN[@]}" "$FPM_BIN" "${args[@]}" >"$d/fpm.out" 2>&1 </dev/null &
    MASTER=$!
    PIDS+=("$MASTER")
    local i
    for ((i = 0; i < 100; i++)); do [[ -S $d/php-fpm.sock ]] && break; sleep 0.1; done
    [[ -S $d/php-fpm.sock ]] || { warn "php-fpm did not start"; cat "$d/fpm.out" "$d/php-fpm.log" 2>/dev/null | tail -20; return 1; }
    # nginx, one process, on the servers' cores too: it is part of what fpm needs to serve.
    setsid "${SERVER_PIN[@]}" nginx -e "$d/nginx-error.log" -p "$d" -c "$d/nginx.conf" >"$d/nginx.out" 2>&1 </dev/null &
    local ng=$!
    PIDS+=("$ng")
    wait_port "$PORT" "$ng" nginx "$d/nginx-error.log"
}

start_rr() { # sets PORT, MASTER
    local d="$TMP/rr"
    mkdir -p "$d"
    NEXTCLOUD_ROOT=$NC RR_NUM_WORKERS=$WORKERS RR_LOG_LEVEL=info setsid "${SERVER_PIN[@]}" \
        php -d "extension=$RR_SO" -d apc.enable_cli=1 -d opcache.enable_cli=1 "${OPCACHE_ARGS[@]}" -d rr.address=127.0.0.1:0 \
        "$ROOT/examples/nextcloud/worker.php" >"$d/rr.out" 2>&1 </dev/null &
    MASTER=$!
    PIDS+=("$MASTER")
    local i
    PORT=
    for ((i = 0; i < 600; i++)); do
        PORT=$(grep -o 'rr listening on http://[0-9.:]*' "$d/rr.out" 2>/dev/null | head -1 | sed 's/.*://')
        [[ -n $PORT ]] && break
        kill -0 "$MASTER" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $PORT ]] || { warn "rr did not start:"; tail -n 30 "$d/rr.out"; return 1; }
    # The pool boots its workers after listening: wait until WORKERS of them are there.
    for ((i = 0; i < 600; i++)); do
        [[ $(worker_pids "$MASTER" | wc -l) -ge $WORKERS ]] && break
        sleep 0.1
    done
}
