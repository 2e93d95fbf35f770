<?php

/**
 * What keeping tokens per request costs a worker with an APCu of its own (RR\Nextcloud\TokenCache,
 * docs/nextcloud.md, "Workers that do not share APCu"): one token looked up N times from
 * Nextcloud's APCu cache, then N times with the per-request cache emptied before each lookup
 * (its row read from the database). A throwaway app token of `admin`, deleted at the end.
 *
 *     flock /tmp/bench.lock php -d apc.enable_cli=1 -d opcache.enable_cli=1 \
 *         bench/nextcloud/token_cache.php /path/to/nextcloud [N=3000]
 */

declare(strict_types=1);

use OC\Authentication\Token\IProvider;
use OC\Authentication\Token\Manager;
use OC\Authentication\Token\PublicKeyTokenProvider;
use OCP\Authentication\Token\IToken;
use OCP\Server;
use RR\Nextcloud\Privates;
use RR\Nextcloud\TokenCache;

[, $root, $n] = $argv + [null, '', '3000'];
require __DIR__ . '/../../php/autoload.php';
require rtrim($root, '/') . '/lib/base.php';
set_exception_handler(null);

$n = max(1, (int)$n);
$manager = Server::get(IProvider::class);
$provider = Privates::get($manager, Manager::class, 'publicKeyTokenProvider');
$id = 'rrbench' . bin2hex(random_bytes(24));
$token = $manager->generateToken($id, 'admin', 'admin', null, 'rr bench', IToken::PERMANENT_TOKEN);
try {
    $manager->getToken($id);
    $t0 = hrtime(true);
    for ($i = 0; $i < $n; $i++) {
        $manager->getToken($id);
    }
    $apcu = (hrtime(true) - $t0) / $n / 1000;
    if (!TokenCache::confine($provider, Server::get(\OCP\ICacheFactory::class))) {
        fwrite(STDERR, "the token cache is not APCu here: nothing to compare\n");
        exit(1);
    }
    $memory = Privates::get($provider, PublicKeyTokenProvider::class, 'cache');
    $t0 = hrtime(true);
    for ($i = 0; $i < $n; $i++) {
        $memory->clear();
        $manager->getToken($id);
    }
    $database = (hrtime(true) - $t0) / $n / 1000;
    printf("getToken x%d: APCu %.1f us, database (per-request cache) %.1f us, difference %.1f us\n",
        $n, $apcu, $database, $database - $apcu);
} finally {
    $manager->invalidateTokenById('admin', $token->getId());
}
