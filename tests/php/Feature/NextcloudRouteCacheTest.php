<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;
use RR\Nextcloud\RouteCache;

/**
 * RR\Nextcloud\RouteCache keeps the compiled route collections CachingRouter fetches and hands
 * everything else to the wrapped cache (OCP\ICache from the install named by RR_NEXTCLOUD_ROOT).
 */
final class NextcloudRouteCacheTest extends TestCase
{
    public static function setUpBeforeClass(): void
    {
        $root = (string)getenv('RR_NEXTCLOUD_ROOT');
        if ($root === '' || !is_file($root . '/lib/public/ICache.php')) {
            self::markTestSkipped('set RR_NEXTCLOUD_ROOT to a Nextcloud install (OCP\ICache comes from its lib/public/)');
        }
        require_once $root . '/lib/public/ICache.php';
    }

    /** An ICache in memory that counts the reads that reach it. */
    private static function backend(): \OCP\ICache
    {
        return new class () implements \OCP\ICache {
            /** @var array<string, mixed> */
            public array $values = [];
            /** @var array<string, int> */
            public array $reads = [];

            public function get($key)
            {
                $this->reads[$key] = ($this->reads[$key] ?? 0) + 1;
                return $this->values[$key] ?? null;
            }

            public function set($key, $value, $ttl = 0)
            {
                $this->values[$key] = $value;
                return true;
            }

            public function hasKey($key)
            {
                return isset($this->values[$key]);
            }

            public function remove($key)
            {
                unset($this->values[$key]);
                return true;
            }

            public function clear($prefix = '')
            {
                $this->values = [];
                return true;
            }

            public static function isAvailable(): bool
            {
                return true;
            }
        };
    }

    public function testTheRouteCollectionIsFetchedOnceOtherKeysEveryTime(): void
    {
        $backend = self::backend();
        $cache = new RouteCache($backend);
        $key = 'localhost#/#rootCollection';
        self::assertNull($cache->get($key), 'nothing cached yet');
        $routes = ['compiled' => ['/ocs/v2.php/cloud/capabilities' => ['core.OCS.getCapabilities']]];
        self::assertTrue($cache->set($key, $routes, 3600));
        $backend->set('other', 'value');
        for ($i = 0; $i < 3; $i++) {
            self::assertSame($routes, $cache->get($key));
            self::assertSame('value', $cache->get('other'));
        }
        self::assertSame(2, $backend->reads[$key], 'one miss, then one fetch, then kept');
        self::assertSame(3, $backend->reads['other'], 'other keys go to the cache every time');
        self::assertSame(1, $cache->kept());
    }

    public function testSetRemoveAndClearDropTheKeptCollection(): void
    {
        $backend = self::backend();
        $cache = new RouteCache($backend);
        $key = 'cloud.example#/#rootCollection';
        $cache->set($key, ['v1']);
        self::assertSame(['v1'], $cache->get($key));
        $cache->set($key, ['v2']);
        self::assertSame(['v2'], $cache->get($key), 'a new value replaces the kept one');
        $cache->remove($key);
        self::assertNull($cache->get($key));
        self::assertFalse($cache->hasKey($key));
        $cache->set($key, ['v3']);
        self::assertSame(['v3'], $cache->get($key));
        $cache->clear();
        self::assertSame(0, $cache->kept());
        self::assertNull($cache->get($key));
    }

    public function testAtMostSixteenHostsAreKept(): void
    {
        $backend = self::backend();
        $cache = new RouteCache($backend);
        for ($i = 0; $i < 20; $i++) {
            $cache->set("host$i#/#rootCollection", ["routes $i"]);
            self::assertSame(["routes $i"], $cache->get("host$i#/#rootCollection"));
        }
        self::assertSame(16, $cache->kept());
        self::assertSame(['routes 19'], $cache->get('host19#/#rootCollection'), 'the others still answered');
    }
}
