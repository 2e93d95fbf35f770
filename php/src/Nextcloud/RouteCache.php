<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * The cache of Nextcloud's CachingRouter, with the compiled route collection kept in the
 * worker once fetched.
 *
 * CachingRouter::findMatchingRoute() fetches every app's compiled routes from the local cache
 * (APCu) on every request it routes: a large nested array copied out of shared memory each
 * time, about a tenth of an OCS capabilities request. The collection is a function of the
 * enabled apps, which a worker loads at boot and keeps (enabling or disabling an app takes a
 * reload, docs/nextcloud.md), so the worker keeps the first value it fetched. Everything else
 * goes to the wrapped cache as it is.
 */
final class RouteCache implements \OCP\ICache
{
    /** Hosts (with base URL) remembered at most; the trusted-domain check bounds them anyway. */
    private const MAX = 16;

    /** @var array<string, array<mixed>> compiled route collections by cache key */
    private array $routes = [];

    public function __construct(private readonly \OCP\ICache $cache)
    {
    }

    public function get($key)
    {
        if (isset($this->routes[$key])) {
            return $this->routes[$key];
        }
        $value = $this->cache->get($key);
        if (is_array($value) && $value !== [] && str_ends_with((string)$key, '#rootCollection')
            && count($this->routes) < self::MAX) {
            $this->routes[$key] = $value;
        }
        return $value;
    }

    public function set($key, $value, $ttl = 0)
    {
        unset($this->routes[$key]);
        return $this->cache->set($key, $value, $ttl);
    }

    public function hasKey($key)
    {
        return isset($this->routes[$key]) || $this->cache->hasKey($key);
    }

    public function remove($key)
    {
        unset($this->routes[$key]);
        return $this->cache->remove($key);
    }

    public function clear($prefix = '')
    {
        $this->routes = [];
        return $this->cache->clear($prefix);
    }

    public static function isAvailable(): bool
    {
        return true;
    }

    /** How many route collections are kept. */
    public function kept(): int
    {
        return count($this->routes);
    }
}
