<?php

declare(strict_types=1);

namespace RR\Nextcloud\SpeedUps;

use OC\Route\CachingRouter;
use OC\Route\Router;
use OCP\Server;
use RR\Nextcloud\Privates;
use RR\Nextcloud\RouteCache;

/** The router keeps the compiled routes it fetches from APCu (RouteCache). */
final class CompiledRoutes implements SpeedUp
{
    public function install(): void
    {
        $router = Server::get(Router::class);
        if (!$router instanceof CachingRouter) {
            return;
        }
        $cache = Privates::get($router, CachingRouter::class, 'cache');
        if (!$cache instanceof RouteCache) {
            Privates::set($router, CachingRouter::class, 'cache', new RouteCache($cache));
        }
    }

    public function endRequest(): void
    {
    }
}
