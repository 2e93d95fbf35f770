#!/usr/bin/env bash
# Real clients against rr and against nginx + php-fpm on the same Nextcloud install, one server
# after the other, and whether they agree:
#
# - litmus (WebDAV compliance: basic copymove props locks http) on a folder of alice's: the same
#   tests must pass, fail, warn and be skipped on both;
# - rclone (webdav, vendor nextcloud): a tree copied up, `rclone check` clean (sizes and
#   hashes), copied back identical, purged (and gone);
# - nextcloudcmd (the desktop client's sync engine): a folder synced up, exit 0, then synced
#   down into an empty folder, identical to the source.
#
#   RR_NEXTCLOUD_ROOT=/path/to/nextcloud RR_EXT=/path/to/rr.so tests/nextcloud/clients.sh
#
# Needs the env file of tests/nextcloud/install.sh (RR_NEXTCLOUD_ENV, else
# <root>/../rr-nextcloud-test.env), nginx, php8.2-fpm, and Debian's litmus, rclone and
# nextcloud-desktop-cmd (apt-get install litmus rclone nextcloud-desktop-cmd). WORKERS (2): the
# PHP processes of each server. Exit 0 when every client succeeded on both servers and litmus
# gave the same results; the per-server logs stay in the printed directory on failure.
set -uo pipefail

TEMPLATES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$TEMPLATES/../.." && pwd)
WORKERS=${WORKERS:-2}

log() { printf '[clients] %s\n' "$*"; }
warn() { printf '[clients] FAILED: %s\n' "$*"; }
die() { printf '[clients] %s\n' "$*" >&2; exit 2; }

NC=${RR_NEXTCLOUD_ROOT:-}
[[ -n $NC ]] || die "set RR_NEXTCLOUD_ROOT to an installed Nextcloud (tests/nextcloud/README.md)"
[[ -f $NC/occ && -f $NC/config/config.php ]] || die "RR_NEXTCLOUD_ROOT=$NC is not an installed Nextcloud"
ENV_FILE=${RR_NEXTCLOUD_ENV:-$NC/../rr-nextcloud-test.env}
[[ -f $ENV_FILE ]] || die "$ENV_FILE missing: run tests/nextcloud/install.sh --root $NC"
# shellcheck disable=SC1090
source "$ENV_FILE"
RR_SO=${RR_EXT:-$ROOT/target/release/librr.so}
[[ -f $RR_SO ]] || die "no extension at $RR_SO: cargo build --release, or set RR_EXT"
FPM_BIN=$(command -v php-fpm8.2 || command -v php-fpm) || die "php-fpm missing (apt-get install php8.2-fpm)"
for tool in nginx litmus rclone nextcloudcmd; do
    command -v "$tool" >/dev/null ||
        die "$tool missing: apt-get install nginx litmus rclone nextcloud-desktop-cmd"
done
bash "$TEMPLATES/services.sh" start "$ENV_FILE" >/dev/null || die "services.sh start $ENV_FILE failed"

USER_NAME=$RR_NC_ALICE_USER
USER_PASS=$RR_NC_ALICE_APP_PASSWORD
SERVER_PIN=()
declare -a PIDS=()
TMP=$(mktemp -d /tmp/rr-nc-clients.XXXXXX)
FAILURES=0
occ() { (cd "$NC" && php -d apc.enable_cli=1 occ --no-interaction "$@"); }
# nextcloudcmd 3.7 (Debian 12) uploads small files in one multipart POST to /remote.php/dav/bulk,
# which Nextcloud 32 rejects ("Unknown error while seeking content", also under php-fpm): bulk
# upload is turned off for the run (the client then PUTs each file) and put back after.
BULK=$(occ config:system:get bulkupload.enabled 2>/dev/null)
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[$i]}"; done
    if [[ -n $BULK ]]; then
        occ config:system:set bulkupload.enabled --type=boolean --value="$BULK" >/dev/null
    else
        occ config:system:delete bulkupload.enabled >/dev/null
    fi
    ((FAILURES)) || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=servers.bash
source "$TEMPLATES/servers.bash"
occ config:system:set bulkupload.enabled --type=boolean --value=false >/dev/null ||
    die "occ config:system:set bulkupload.enabled failed"

dav() { # method path [curl args...]: the status code
    local method=$1 path=$2
    shift 2
    curl -s -o /dev/null -w '%{http_code}' -X "$method" -u "$USER_NAME:$USER_PASS" "$@" \
        "http://127.0.0.1:$PORT/remote.php/dav/files/$USER_NAME$path"
}

# The tree both uploaders send: nested folders, an empty file, text, names with spaces and
# non-ASCII letters, and files large enough for chunked uploads (rclone chunks past 10 MiB).
make_tree() { # dir
    local d=$1
    mkdir -p "$d/a/b/c" "$d/empty folder" "$d/Ünïcødé ∂ir"
    : >"$d/zero.txt"
    printf 'hello from rr\n' >"$d/a/hello.txt"
    seq 1 20000 >"$d/a/b/numbers.txt"
    head -c 3000000 /dev/urandom >"$d/a/b/c/random-3M.bin"
    head -c 12582912 /dev/urandom >"$d/big 12M.bin"
    printf 'naïve café\n' >"$d/Ünïcødé ∂ir/ß.txt"
}

# litmus's result lines, "suite/NN.test result", sorted: what must be the same on both servers.
# litmus redraws each line with carriage returns, and a warning puts the result on a line below.
litmus_results() { # output file
    tr '\r' '\n' <"$1" | awk '
        /^-> running `/ { suite = $3; gsub(/[^A-Za-z0-9_]/, "", suite) }
        match($0, /^ *([0-9]+)\. ([A-Za-z0-9_]+)\./, m) { test = sprintf("%02d.%s", m[1], m[2]) }
        test != "" && match($0, /\.\.+ *(pass|FAIL|SKIPPED)( \(with [0-9]+ warnings?\))?/, r) {
            result[suite "/" test] = r[1] (r[2] != "" ? "+warning" : "")
        }
        END { for (t in result) print t " " result[t] }' | sort
}

run_litmus() { # server
    local out="$TMP/$1/litmus.txt"
    dav DELETE /rr-clients-litmus >/dev/null
    [[ $(dav MKCOL /rr-clients-litmus) == 201 ]] || { warn "$1 litmus: MKCOL /rr-clients-litmus"; return 1; }
    # litmus writes debug.log and child.log into the current directory.
    (cd "$TMP/$1" && litmus -k "http://127.0.0.1:$PORT/remote.php/dav/files/$USER_NAME/rr-clients-litmus/" \
        "$USER_NAME" "$USER_PASS" >"$out" 2>&1)
    log "$1 litmus: $(grep -E '^<- summary' "$out" | sed 's/^<- //' | paste -sd ';' -)"
    litmus_results "$out" >"$TMP/$1/litmus.results"
    dav DELETE /rr-clients-litmus >/dev/null
    [[ -s $TMP/$1/litmus.results ]] || { warn "$1 litmus: no results (see $out)"; return 1; }
}

run_rclone() { # server
    local d="$TMP/$1" remote step
    remote=":webdav,url='http://127.0.0.1:$PORT/remote.php/dav/files/$USER_NAME',vendor=nextcloud,user=$USER_NAME,pass='$(rclone obscure "$USER_PASS")':rr-clients-rclone"
    rc() { rclone --config /dev/null "$@" >>"$d/rclone.txt" 2>&1 || { warn "$server rclone $1 (see $d/rclone.txt)"; return 1; }; }
    local server=$1
    rclone --config /dev/null purge "$remote" >/dev/null 2>&1
    rc copy "$d/tree" "$remote" && rc check "$d/tree" "$remote" && rc copy "$remote" "$d/rclone-back" || return 1
    # rclone does not copy empty folders: compare the files.
    diff -r "$d/tree" "$d/rclone-back" | grep -v '^Only in .*: empty folder$' >"$d/rclone.diff"
    [[ ! -s $d/rclone.diff ]] || { warn "$1 rclone: the copy back differs: $(head -3 "$d/rclone.diff")"; return 1; }
    rc purge "$remote" || return 1
    [[ $(dav PROPFIND /rr-clients-rclone -H 'Depth: 0') == 404 ]] || { warn "$1 rclone: still there after purge"; return 1; }
    log "$1 rclone: copy, check, copy back, purge: ok"
}

run_nextcloudcmd() { # server
    local d="$TMP/$1" url="http://127.0.0.1:$PORT" code
    dav DELETE /rr-clients-sync >/dev/null
    [[ $(dav MKCOL /rr-clients-sync) == 201 ]] || { warn "$1 nextcloudcmd: MKCOL /rr-clients-sync"; return 1; }
    cp -a "$d/tree" "$d/sync-up"
    mkdir -p "$d/sync-down"
    nextcloudcmd --non-interactive -u "$USER_NAME" -p "$USER_PASS" --path /rr-clients-sync \
        "$d/sync-up" "$url" >"$d/nextcloudcmd-up.txt" 2>&1
    code=$?
    ((code == 0)) || { warn "$1 nextcloudcmd up: exit $code (see $d/nextcloudcmd-up.txt)"; return 1; }
    nextcloudcmd --non-interactive -u "$USER_NAME" -p "$USER_PASS" --path /rr-clients-sync \
        "$d/sync-down" "$url" >"$d/nextcloudcmd-down.txt" 2>&1
    code=$?
    ((code == 0)) || { warn "$1 nextcloudcmd down: exit $code (see $d/nextcloudcmd-down.txt)"; return 1; }
    diff -r -x '.sync_*' -x '.nextcloudsync.log' -x '.owncloudsync.log' "$d/tree" "$d/sync-down" >"$d/sync.diff"
    [[ ! -s $d/sync.diff ]] || { warn "$1 nextcloudcmd: the synced-down tree differs: $(head -3 "$d/sync.diff")"; return 1; }
    dav DELETE /rr-clients-sync >/dev/null
    log "$1 nextcloudcmd: sync up, sync down into an empty folder, identical: ok"
}

run_server() { # name start-function
    local name=$1 client
    mkdir -p "$TMP/$name"
    make_tree "$TMP/$name/tree"
    "$2" || { warn "$name did not start"; FAILURES=$((FAILURES + 1)); return; }
    log "$name on port $PORT ($WORKERS PHP workers)"
    for client in run_litmus run_rclone run_nextcloudcmd; do
        "$client" "$name" || FAILURES=$((FAILURES + 1))
    done
    curl -s -o /dev/null -X DELETE -u "$USER_NAME:$USER_PASS" \
        "http://127.0.0.1:$PORT/remote.php/dav/trashbin/$USER_NAME/trash"
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[$i]}"; done
    PIDS=()
}

echo "real clients on rr and nginx+php-fpm  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "install: $NC (database ${RR_NC_DATABASE:-sqlite}${RR_NC_REDIS_SOCKET:+, Redis}); $(litmus --version 2>&1 | head -1); $(rclone version | head -1); $(nextcloudcmd --version 2>&1 | head -1)"
run_server php-fpm start_fpm
run_server rr start_rr

if [[ -s $TMP/php-fpm/litmus.results && -s $TMP/rr/litmus.results ]]; then
    if diff "$TMP/php-fpm/litmus.results" "$TMP/rr/litmus.results" >"$TMP/litmus.diff"; then
        log "litmus: the same $(wc -l <"$TMP/rr/litmus.results") results on both ($(awk '{print $2}' "$TMP/rr/litmus.results" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}'))"
    else
        warn "litmus results differ (< php-fpm, > rr):"
        cat "$TMP/litmus.diff"
        FAILURES=$((FAILURES + 1))
    fi
fi
if ((FAILURES)); then
    log "$FAILURES failure(s); logs in $TMP"
    exit 1
fi
log "all clients agree"
