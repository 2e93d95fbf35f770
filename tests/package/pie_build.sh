#!/bin/sh
# Builds rr the way PIE and pecl do (phpize, configure, make, make install) in a
# temporary copy of the repository, stages the install, and loads the result.
#
# Environment:
#   RR_CARGO_TARGET_DIR  cargo target dir to reuse (e.g. the CI release build);
#                        without it, cargo builds from scratch inside the copy.
#   PHP_CONFIG, PHPIZE   the PHP to build for (default: php-config, phpize on PATH).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
php_config=$(command -v "${PHP_CONFIG:-php-config}" || true)
phpize=${PHPIZE:-phpize}
jobs=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)

reported=
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rr-pie-build.XXXXXX")
on_exit() {
    status=$?
    rm -rf "$tmp"
    if [ "$status" -ne 0 ] && [ -z "$reported" ]; then
        echo "FAIL: pie_build: unexpected error (exit $status)"
    fi
    exit "$status"
}
trap on_exit EXIT

fail() {
    reported=1
    echo "FAIL: pie_build: $*"
    exit 1
}

step() {
    echo "== $*"
}

[ -n "$php_config" ] || fail "php-config not found (set PHP_CONFIG)"
php=$("$php_config" --php-binary)
ext_dir=$("$php_config" --extension-dir)

step "copying $root to $tmp/src"
mkdir "$tmp/src"
# Skip the cargo target dir and git metadata, as a PIE download would not have them.
tar -C "$root" --exclude=./target --exclude=./.git -cf - . | tar -C "$tmp/src" -xf -
cd "$tmp/src"

# Like PIE: a tree that was configured before (a developer's checkout) is cleaned
# first, so stale modules/ or Makefiles cannot stand in for this build.
if [ -f configure ]; then
    step "$phpize --clean"
    "$phpize" --clean >/dev/null || fail "phpize --clean failed"
fi

step "$phpize"
"$phpize" || fail "phpize failed"

step "./configure --with-php-config=$php_config"
./configure --with-php-config="$php_config" || fail "configure failed"

step "make -j$jobs (RR_CARGO_TARGET_DIR=${RR_CARGO_TARGET_DIR:-<fresh>})"
make -j"$jobs" || fail "make failed"
[ -f modules/rr.so ] || fail "make did not leave modules/rr.so"

step "make install INSTALL_ROOT=$tmp/stage"
make install INSTALL_ROOT="$tmp/stage" || fail "make install failed"
so="$tmp/stage$ext_dir/rr.so"
[ -f "$so" ] || fail "make install did not install $so"

step "loading $so"
# Any startup warning (e.g. "Module already loaded") means we did not test this build.
modules=$("$php" -d display_startup_errors=1 -d extension="$so" -m 2>&1) || fail "php -m exited non-zero: $modules"
if printf '%s\n' "$modules" | grep -Eiq 'warning|error'; then
    fail "loading rr printed: $(printf '%s\n' "$modules" | grep -Ei 'warning|error')"
fi
printf '%s\n' "$modules" | grep -qx rr || fail "php -m does not list rr"
"$php" -d extension="$so" --ri rr >/dev/null || fail "php --ri rr exited non-zero"

echo "PASS: pie_build: phpize, configure, make, make install and load of rr.so ($("$php" -r 'echo PHP_VERSION;'))"
