#!/usr/bin/env bash
# Starts (or stops) the services a Nextcloud install of tests/nextcloud/install.sh uses, from
# Debian's packages, installing what is missing: PostgreSQL, MariaDB, Redis. Idempotent: a
# running service is left as it is. tests/nextcloud/ runs `services.sh start ENV_FILE`
# before its scenarios, so an install keeps working on a machine that was restarted.
#
#   tests/nextcloud/services.sh start|stop|restart-database ENV_FILE
#
# restart-database restarts PostgreSQL or MariaDB and returns once it accepts connections
# again (tests/nextcloud/databases.rs does it under load); with SQLite it fails.
#
# The env file (written by install.sh) says what is used: RR_NC_DATABASE (sqlite, pgsql,
# mysql) and RR_NC_REDIS_SOCKET (a unix socket path; unset: no Redis). Redis runs as this
# user from the env file's directory, on that socket only (no TCP port).
set -euo pipefail

die() { echo "services.sh: $*" >&2; exit 1; }
log() { echo "services.sh: $*"; }

(($# == 2)) || die "usage: services.sh start|stop|restart-database ENV_FILE"
ACTION=$1 ENV_FILE=$2
[[ -f $ENV_FILE ]] || die "$ENV_FILE: no such env file (run tests/nextcloud/install.sh)"
# shellcheck disable=SC1090
source "$ENV_FILE"
DATABASE=${RR_NC_DATABASE:-sqlite}
REDIS_SOCKET=${RR_NC_REDIS_SOCKET:-}

apt_install() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

pg_cluster() { pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1" "$2}'; }

start_pgsql() {
    apt_install postgresql php8.2-pgsql
    read -r version name <<<"$(pg_cluster)"
    [[ -n ${version:-} ]] || die "no PostgreSQL cluster after installing postgresql"
    if ! pg_lsclusters -h | awk '{print $4}' | grep -qx online; then
        log "starting PostgreSQL $version/$name"
        pg_ctlcluster "$version" "$name" start
    fi
}

start_mysql() {
    apt_install mariadb-server php8.2-mysql
    if ! mysqladmin ping >/dev/null 2>&1; then
        log "starting MariaDB"
        if [[ -x /etc/init.d/mariadb ]]; then
            /etc/init.d/mariadb start >/dev/null
        else
            (mysqld_safe >/dev/null 2>&1 &)
        fi
        for _ in $(seq 100); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.2; done
        mysqladmin ping >/dev/null 2>&1 || die "MariaDB did not start"
    fi
}

redis_pidfile() { echo "${REDIS_SOCKET%.sock}.pid"; }

start_redis() {
    apt_install redis-server php-redis
    if redis-cli -s "$REDIS_SOCKET" ping >/dev/null 2>&1; then
        return
    fi
    log "starting Redis on $REDIS_SOCKET"
    redis-server --port 0 --unixsocket "$REDIS_SOCKET" --unixsocketperm 770 \
        --dir "$(dirname "$REDIS_SOCKET")" --save "" --appendonly no --daemonize yes \
        --pidfile "$(redis_pidfile)" >/dev/null
    for _ in $(seq 100); do redis-cli -s "$REDIS_SOCKET" ping >/dev/null 2>&1 && return; sleep 0.1; done
    die "Redis did not start on $REDIS_SOCKET"
}

restart_database() {
    case $DATABASE in
        pgsql)
            read -r version name <<<"$(pg_cluster)"
            pg_ctlcluster "$version" "$name" restart
            ;;
        mysql)
            if [[ -x /etc/init.d/mariadb ]]; then
                /etc/init.d/mariadb restart >/dev/null
            else
                mysqladmin shutdown
                start_mysql
            fi
            for _ in $(seq 100); do mysqladmin ping >/dev/null 2>&1 && return; sleep 0.2; done
            die "MariaDB did not come back"
            ;;
        *) die "RR_NC_DATABASE=$DATABASE in $ENV_FILE: no database server to restart" ;;
    esac
}

case $ACTION in
    start)
        case $DATABASE in
            sqlite) ;;
            pgsql) start_pgsql ;;
            mysql) start_mysql ;;
            *) die "RR_NC_DATABASE=$DATABASE in $ENV_FILE: expected sqlite, pgsql or mysql" ;;
        esac
        [[ -z $REDIS_SOCKET ]] || start_redis
        ;;
    stop)
        if [[ -n $REDIS_SOCKET && -f $(redis_pidfile) ]]; then
            kill "$(cat "$(redis_pidfile)")" 2>/dev/null || true
        fi
        case $DATABASE in
            pgsql) read -r version name <<<"$(pg_cluster)"; pg_ctlcluster "$version" "$name" stop || true ;;
            mysql) mysqladmin shutdown 2>/dev/null || true ;;
        esac
        ;;
    restart-database) restart_database ;;
    *) die "usage: services.sh start|stop|restart-database ENV_FILE" ;;
esac
