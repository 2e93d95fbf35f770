<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\Authentication\Token\IProvider;
use OC\Authentication\Token\Manager;
use OC\Authentication\Token\PublicKeyTokenProvider;
use OC\Memcache\APCu;
use OCP\ICacheFactory;
use OCP\Server;

/**
 * Nextcloud's token provider (PublicKeyTokenProvider) keeps each token it looked up, app
 * passwords and browser sessions alike, for 10 s in the local cache (`authtoken_`), and a
 * revocation (an app password deleted or rotated, a session revoked in Settings, a logout)
 * changes the entry in that cache only. php-fpm's children share it, so the next request on
 * any of them refuses the token. Workers with an APCu each (ApcuScope::PerProcess) would go on
 * taking it for up to 10 s: there the provider gets the cache Nextcloud itself uses when no
 * local cache is configured, a memory cache, which the reset empties after every request
 * (RequestReset, step 4, as every memory cache a boot service holds). Each request then reads
 * the token's row from the database once.
 */
final class TokenCache
{
    /**
     * Gives the provider of the booted server's token manager a memory cache in place of an
     * APCu one. False when there is no such provider (another Nextcloud than this was written
     * for); true otherwise, also when its cache is not APCu (shared, or already in memory).
     */
    public static function confineToRequests(): bool
    {
        $manager = Server::get(IProvider::class);
        if ($manager::class !== Manager::class) {
            return false;
        }
        $provider = Privates::in(
            Manager::class,
            static fn (Manager $m): mixed => $m->publicKeyTokenProvider ?? null,
        )($manager);
        if (!$provider instanceof PublicKeyTokenProvider) {
            return false;
        }
        self::confine($provider, Server::get(ICacheFactory::class));
        return true;
    }

    /**
     * `$provider`'s cache replaced by `$factory->createInMemory()` when it is APCu; whether
     * it was.
     */
    public static function confine(PublicKeyTokenProvider $provider, ICacheFactory $factory): bool
    {
        if (!Privates::get($provider, PublicKeyTokenProvider::class, 'cache') instanceof APCu) {
            return false;
        }
        Privates::set($provider, PublicKeyTokenProvider::class, 'cache', $factory->createInMemory());
        return true;
    }
}
