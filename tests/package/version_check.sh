#!/bin/sh
# The version scheme (docs/release.md): Cargo.toml's version is SemVer, the extension reports
# it, and CHANGELOG.md has its section.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
fail() {
    echo "FAIL: version_check: $*"
    exit 1
}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
echo "$version" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$' || fail "Cargo.toml version '$version' is not SemVer"
grep -q "^## \[$version\]" "$root/CHANGELOG.md" || fail "CHANGELOG.md has no '## [$version]' section"
if [ -n "${RR_EXT:-}" ]; then
    reported=$(php -n -d "extension=$RR_EXT" -r 'echo phpversion("rr");')
    [ "$reported" = "$version" ] || fail "the extension reports '$reported', Cargo.toml says $version"
fi
echo "version $version: Cargo.toml, CHANGELOG.md${RR_EXT:+, phpversion('rr')}"
