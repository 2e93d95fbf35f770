#!/usr/bin/env bash
# Installs (or completes) a Nextcloud to run the Nextcloud suite (tests/nextcloud/) and bench/nextcloud/run against.
#
#   tests/nextcloud/install.sh --root DIR [--tree DIR] [--data DIR] [--env FILE]
#                              [--database sqlite|pgsql|mysql] [--redis]
#                              [--admin-pass PASS] [--force-tokens]
#
# --root   where Nextcloud lives (the directory with occ). If it holds an installed Nextcloud,
#          nothing is copied or reinstalled: only the test setup below is (re)applied.
# --tree   an unmodified release tree (e.g. the nextcloud/ directory of the public repository
#          FredrikJonassonItsb/Nextcloud-vanilla, 32.0.1) copied to --root when --root does not
#          exist yet. Without --tree and without --root, the repository is cloned (needs internet).
# --data   data directory (default: <root>/../data).
# --env    the file the tests read (default: <root>/../rr-nextcloud-test.env).
# --database  sqlite (default), pgsql (PostgreSQL) or mysql (MariaDB): installed from Debian's
#          packages and started by tests/nextcloud/services.sh; a database and user `nextcloud`.
#          Only for a new install (an existing one keeps its database).
# --redis  Redis (Debian's redis-server, started by services.sh on <root>/../redis.sock) as the
#          distributed cache and for file locking, as production installs run.
# --admin-pass  the admin password (for a new install, or the existing one's; default below).
# --force-tokens  create new app passwords even if the env file has working ones.
#
# Test setup (idempotent): PHP modules, trusted domains 127.0.0.1 and localhost,
# has_internet_connection=false, APCu, no brute-force throttle (the tests log in and fail
# logins from 127.0.0.1 on purpose), users alice and bob, one app password each for admin, alice
# and bob, and the env file with all of that.
#
# Known gaps of the public snapshot, handled here: the TrueType fonts in core/fonts/ (avatars and
# user creation crash without them: DejaVu Sans is put in their place and said so), and
# apps/password_policy/lists/list-6..12.php (the test passwords are longer than 12; if creating
# a user still fails on the policy, password_policy is disabled and said so).
set -euo pipefail

REPO_URL=https://github.com/FredrikJonassonItsb/Nextcloud-vanilla
ROOT= TREE= DATA= ENV_FILE= FORCE_TOKENS=0 DATABASE=sqlite REDIS=0
DB_PASS=rr-nextcloud-db-pass-1
ADMIN_PASS=rr-admin-pass-1
# Longer than the longest missing password_policy list (12).
ALICE_PASS=rr-alice-password-0001
BOB_PASS=rr-bob-password-00000001

die() { echo "install.sh: $*" >&2; exit 1; }
log() { echo "install.sh: $*"; }

while (($#)); do
    case $1 in
        --root) ROOT=$2; shift 2 ;;
        --tree) TREE=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --env) ENV_FILE=$2; shift 2 ;;
        --admin-pass) ADMIN_PASS=$2; shift 2 ;;
        --database) DATABASE=$2; shift 2 ;;
        --redis) REDIS=1; shift ;;
        --force-tokens) FORCE_TOKENS=1; shift ;;
        -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ -n $ROOT ]] || die "--root DIR is required (where Nextcloud is or will be installed)"
case $DATABASE in sqlite | pgsql | mysql) ;; *) die "--database $DATABASE: expected sqlite, pgsql or mysql" ;; esac
ROOT=$(realpath -m "$ROOT")
DATA=$(realpath -m "${DATA:-$ROOT/../data}")
ENV_FILE=$(realpath -m "${ENV_FILE:-$ROOT/../rr-nextcloud-test.env}")

# ---- PHP modules
need_modules() {
    local m missing=() have
    have=$(php -m 2>/dev/null || true)
    for m in gd zip intl bcmath gmp sqlite3 pdo_sqlite curl mbstring xml apcu; do
        grep -qix "$m" <<<"$have" || missing+=("$m")
    done
    echo "${missing[@]}"
}
if ! command -v php >/dev/null || [[ -n $(need_modules) ]]; then
    log "installing PHP modules (missing: $(need_modules 2>/dev/null || echo php))"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq php8.2-cli php8.2-fpm php8.2-gd php8.2-zip php8.2-intl php8.2-bcmath \
        php8.2-gmp php8.2-sqlite3 php8.2-curl php8.2-mbstring php8.2-xml php8.2-apcu >/dev/null
    [[ -z $(need_modules) ]] || die "PHP modules still missing after apt-get: $(need_modules)"
fi

occ() { (cd "$ROOT" && php -d apc.enable_cli=1 -d memory_limit=1G occ --no-interaction "$@"); }
installed() { [[ -f $ROOT/config/config.php ]] && [[ $(occ status --output=json 2>/dev/null) == *'"installed":true'* ]]; }

# ---- the tree
if [[ ! -f $ROOT/occ ]]; then
    if [[ -z $TREE ]]; then
        log "no --tree: cloning $REPO_URL (needs internet)"
        CLONE=$(mktemp -d /tmp/nextcloud-vanilla.XXXXXX)
        git clone --depth 1 "$REPO_URL" "$CLONE" || die "could not clone $REPO_URL; pass --tree DIR"
        TREE=$CLONE/nextcloud
    fi
    [[ -f $TREE/occ && -f $TREE/version.php ]] || die "--tree $TREE is not a Nextcloud release tree (no occ/version.php)"
    log "copying $TREE to $ROOT"
    mkdir -p "$ROOT"
    # Never an installed tree's configuration or data: a copy of them would point this install
    # at the other one's database.
    tar -C "$TREE" --exclude=./config/config.php --exclude=./data -cf - . | tar -C "$ROOT" -xf - ||
        die "could not copy $TREE to $ROOT"
fi

# ---- fonts missing from the snapshot (avatars and user creation need them)
SUBST=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
SUBST_BOLD=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
if [[ ! -f $ROOT/core/fonts/NotoSans-Regular.ttf || ! -f $ROOT/core/fonts/NotoSans-Bold.ttf ]]; then
    if [[ ! -f $SUBST ]]; then
        apt-get install -y -qq fonts-dejavu-core >/dev/null 2>&1 || true
    fi
    [[ -f $SUBST ]] || die "core/fonts/NotoSans-*.ttf are missing and no DejaVu font to put in their place"
    for f in NotoSans-Regular NotoSansHK-Regular NotoSansJP-Regular NotoSansKR-Regular NotoSansSC-Regular NotoSansTC-Regular; do
        [[ -f $ROOT/core/fonts/$f.ttf ]] || { cp "$SUBST" "$ROOT/core/fonts/$f.ttf"; log "core/fonts/$f.ttf missing: DejaVu Sans put in its place"; }
    done
    [[ -f $ROOT/core/fonts/NotoSans-Bold.ttf ]] || { cp "${SUBST_BOLD:-$SUBST}" "$ROOT/core/fonts/NotoSans-Bold.ttf"; log "core/fonts/NotoSans-Bold.ttf missing: DejaVu Sans Bold put in its place"; }
fi

# ---- services (database, Redis): what the env file names, started by services.sh
REDIS_SOCKET=
[[ $REDIS == 0 ]] || REDIS_SOCKET=$(dirname "$ENV_FILE")/redis.sock
SERVICES_ENV=$(mktemp)
trap 'rm -f "$SERVICES_ENV"' EXIT
printf 'RR_NC_DATABASE=%s\nRR_NC_REDIS_SOCKET=%s\n' "$DATABASE" "$REDIS_SOCKET" >"$SERVICES_ENV"
bash "$(dirname "$0")/services.sh" start "$SERVICES_ENV"

# ---- install
if installed; then
    log "$ROOT is installed already: applying the test setup only"
    DATABASE=$(occ config:system:get dbtype)
else
    mkdir -p "$DATA"
    db_args=(--database "$DATABASE")
    case $DATABASE in
        pgsql)
            su postgres -c "psql -qtc \"SELECT 1 FROM pg_roles WHERE rolname='nextcloud'\"" | grep -q 1 ||
                su postgres -c "psql -qc \"CREATE USER nextcloud PASSWORD '$DB_PASS' CREATEDB\""
            db_args+=(--database-host localhost --database-name nextcloud --database-user nextcloud
                --database-pass "$DB_PASS")
            ;;
        mysql)
            mysql -e "CREATE USER IF NOT EXISTS 'nextcloud'@'localhost' IDENTIFIED BY '$DB_PASS';
                GRANT ALL PRIVILEGES ON *.* TO 'nextcloud'@'localhost' WITH GRANT OPTION;"
            db_args+=(--database-host localhost --database-name nextcloud --database-user nextcloud
                --database-pass "$DB_PASS")
            ;;
    esac
    log "occ maintenance:install ($DATABASE, data $DATA)"
    occ maintenance:install "${db_args[@]}" --admin-user admin --admin-pass "$ADMIN_PASS" \
        --data-dir "$DATA"
fi
if [[ -n $REDIS_SOCKET ]]; then
    occ config:system:set redis host --value="$REDIS_SOCKET" >/dev/null
    occ config:system:set redis port --value=0 --type=integer >/dev/null
    occ config:system:set memcache.distributed --value='\OC\Memcache\Redis' >/dev/null
    occ config:system:set memcache.locking --value='\OC\Memcache\Redis' >/dev/null
fi

occ config:system:set trusted_domains 0 --value=localhost >/dev/null
occ config:system:set trusted_domains 1 --value=127.0.0.1 >/dev/null
occ config:system:set has_internet_connection --type=boolean --value=false >/dev/null
occ config:system:set memcache.local --value='\OC\Memcache\APCu' >/dev/null
occ config:system:set auth.bruteforce.protection.enabled --type=boolean --value=false >/dev/null
occ config:system:set ratelimit.protection.enabled --type=boolean --value=false >/dev/null

# ---- users
user_exists() { occ user:info "$1" >/dev/null 2>&1; }
add_user() { # name password
    local name=$1 pass=$2 out
    if ! user_exists "$name"; then
        # user:add can throw after the account exists (e.g. avatar generation): check after.
        out=$(OC_PASS=$pass occ user:add --password-from-env "$name" 2>&1) || true
        if ! user_exists "$name"; then
            if [[ $out == *password* || $out == *Password* ]] && [[ $(occ app:list 2>/dev/null) == *password_policy* ]]; then
                log "creating $name failed on the password policy ($(head -c 200 <<<"$out")): disabling password_policy"
                occ app:disable password_policy >/dev/null
                OC_PASS=$pass occ user:add --password-from-env "$name" >/dev/null 2>&1 || true
            fi
            user_exists "$name" || die "could not create user $name: $out"
        fi
        log "user $name created"
    fi
    OC_PASS=$pass occ user:resetpassword --password-from-env "$name" >/dev/null
}
add_user alice "$ALICE_PASS"
add_user bob "$BOB_PASS"
OC_PASS=$ADMIN_PASS occ user:resetpassword --password-from-env admin >/dev/null

# ---- app passwords (Basic auth for DAV/OCS)
app_password() { # user
    local out
    out=$(occ user:auth-tokens:add "$1" 2>&1) || die "occ user:auth-tokens:add $1 failed: $out"
    # The token is the last non-empty line of the output.
    awk 'NF {t=$NF} END {print t}' <<<"$out"
}
declare -A TOKEN=()
if [[ -f $ENV_FILE && $FORCE_TOKENS == 0 ]]; then
    # shellcheck disable=SC1090
    source "$ENV_FILE"
    TOKEN[admin]=${RR_NC_ADMIN_APP_PASSWORD:-}
    TOKEN[alice]=${RR_NC_ALICE_APP_PASSWORD:-}
    TOKEN[bob]=${RR_NC_BOB_APP_PASSWORD:-}
fi
for u in admin alice bob; do
    if [[ -z ${TOKEN[$u]:-} ]]; then
        TOKEN[$u]=$(app_password "$u")
        [[ ${#TOKEN[$u]} -ge 32 ]] || die "unexpected app password for $u: '${TOKEN[$u]}'"
        log "app password created for $u"
    fi
done

cat >"$ENV_FILE" <<EOF
# Written by tests/nextcloud/install.sh: what the Nextcloud suite and bench/nextcloud/run need.
RR_NEXTCLOUD_ROOT=$ROOT
RR_NC_DATA=$DATA
RR_NC_DATABASE=$DATABASE
RR_NC_REDIS_SOCKET=$REDIS_SOCKET
RR_NC_ADMIN_USER=admin
RR_NC_ADMIN_PASSWORD=$ADMIN_PASS
RR_NC_ADMIN_APP_PASSWORD=${TOKEN[admin]}
RR_NC_ALICE_USER=alice
RR_NC_ALICE_PASSWORD=$ALICE_PASS
RR_NC_ALICE_APP_PASSWORD=${TOKEN[alice]}
RR_NC_BOB_USER=bob
RR_NC_BOB_PASSWORD=$BOB_PASS
RR_NC_BOB_APP_PASSWORD=${TOKEN[bob]}
EOF
log "wrote $ENV_FILE"
log "run the tests with: RR_NEXTCLOUD_ROOT=$ROOT cargo test --release --test nextcloud"
