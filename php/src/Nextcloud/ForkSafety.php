<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OCP\IDBConnection;
use OCP\Server;

/**
 * What a booted Nextcloud holds open that must not cross a fork (http.pool.template): every
 * worker forked with the template's socket would write into it in turn and read the others'
 * replies. Registered with RR\Worker::beforeFork(); each connection is reopened on first use in
 * the workers. rr refuses to fork while a connected socket remains and names its peer, which
 * is how one this class does not know of (an LDAP server, an app's own client) shows up.
 */
final class ForkSafety
{
    /** Closes the database, Redis and Memcached connections of the booted instance. */
    public static function closeConnections(): void
    {
        Server::get(IDBConnection::class)->close();
        self::closeRedis();
        self::closeMemcached();
    }

    /**
     * The one \Redis (or \RedisCluster) RedisFactory made, shared by every Redis-backed cache
     * and the file locking: closed, and forgotten where it is kept (the factory's instance,
     * OC\Memcache\Redis's static copy), so the next use connects anew.
     */
    private static function closeRedis(): void
    {
        if (!class_exists(\OC\RedisFactory::class, false)) {
            return;
        }
        // Registered under its old name: Memcache\Redis asks for 'RedisFactory'.
        $factory = \OC::$server->get('RedisFactory');
        $kept = [Privates::swap($factory, \OC\RedisFactory::class, 'instance', null)];
        if (class_exists(\OC\Memcache\Redis::class, false)) {
            $kept[] = Privates::swapStatic(\OC\Memcache\Redis::class, 'cache', null);
        }
        foreach ($kept as $redis) {
            if ($redis !== null && method_exists($redis, 'close')) {
                $redis->close();
            }
        }
    }

    /** libmemcached reconnects by itself after quit(). */
    private static function closeMemcached(): void
    {
        if (!class_exists(\OC\Memcache\Memcached::class, false)) {
            return;
        }
        $memcached = Privates::getStatic(\OC\Memcache\Memcached::class, 'cache');
        $memcached?->quit();
    }
}
