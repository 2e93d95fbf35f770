#!/bin/sh
# The two Composer packages of this repository: the root one is only the extension (PIE's
# "php-ext", no PHP code), php/ is the PHP library "rr/rr-php". Installs the library into a
# scratch app through a path repository (no network) and loads its classes, with the
# extension when RR_EXT names it.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rr-composer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL: composer_packages: $*"
    exit 1
}

command -v composer >/dev/null || fail "composer not found (apt-get install composer)"
export COMPOSER_HOME="$tmp/home" COMPOSER_NO_INTERACTION=1 COMPOSER_ALLOW_SUPERUSER=1

echo "== root composer.json: the extension only"
php -r '
    $c = json_decode(file_get_contents($argv[1]), true, 512, JSON_THROW_ON_ERROR);
    $bad = [];
    if (($c["type"] ?? "") !== "php-ext") { $bad[] = "type is not php-ext"; }
    if (($c["php-ext"]["extension-name"] ?? "") !== "rr") { $bad[] = "php-ext.extension-name is not rr"; }
    if (($c["php-ext"]["download-url-method"] ?? null) !== ["pre-packaged-binary", "composer-default"]) {
        $bad[] = "php-ext.download-url-method must try the prebuilt binary (.ci/pie-binary) first, then build";
    }
    foreach (["autoload", "autoload-dev", "bin"] as $key) {
        if (isset($c[$key])) { $bad[] = "a php-ext package has no $key"; }
    }
    if ($bad !== []) { fwrite(STDERR, implode("\n", $bad) . "\n"); exit(1); }
' "$root/composer.json" || fail "root composer.json"

echo "== php/composer.json: the library"
composer validate --no-check-publish --strict -d "$root/php" >/dev/null || fail "php/composer.json is not valid"

echo "== composer install rr/rr-php into an app"
mkdir "$tmp/app"
cp -r "$root/php" "$tmp/rr-php"
cat >"$tmp/app/composer.json" <<JSON
{
    "name": "test/app",
    "repositories": [
        {"type": "path", "url": "$tmp/rr-php", "options": {"symlink": false, "versions": {"rr/rr-php": "1.0.0"}}},
        {"packagist.org": false}
    ],
    "require": {"rr/rr-php": "^1.0"}
}
JSON
composer install -d "$tmp/app" --no-progress -q || fail "composer install of rr/rr-php failed"

ext_args=""
if [ -n "${RR_EXT:-}" ]; then
    ext_args="-d extension=$RR_EXT"
fi
# shellcheck disable=SC2086
out=$(cd "$tmp/app" && php -n $ext_args -r '
    require "vendor/autoload.php";
    $classes = [RR\Http\PSR7Worker::class, RR\Http\ServerParams::class, RR\Laravel\Worker::class,
        RR\RoadRunner\Bridge::class, Spiral\RoadRunner\Worker::class, Spiral\RoadRunner\Http\PSR7Worker::class];
    foreach ($classes as $class) {
        if (!class_exists($class)) { echo "missing $class\n"; exit(1); }
    }
    echo "ok ", extension_loaded("rr") ? "with the extension" : "without the extension", "\n";
') || fail "classes of rr/rr-php not autoloaded: $out"
echo "$out"
