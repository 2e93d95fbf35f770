<?php

declare(strict_types=1);

namespace RR\Laravel;

use Illuminate\Cache\ArrayStore;
use Illuminate\Cache\CacheManager;
use Illuminate\Database\Connection;
use Illuminate\Database\ConnectionInterface;
use Illuminate\Foundation\Application;
use Illuminate\Routing\Router;
use Illuminate\Routing\UrlGenerator;
use Illuminate\Support\Str;
use Illuminate\View\Factory as ViewFactory;

/**
 * Empties what services built at boot (and so shared by every sandbox) collected during a
 * request: session drivers and their data, authenticated users, queued cookies, the database
 * query logs and transactions left open, scoped instances, the log context, Str's caches,
 * `array` cache stores, the router's current route with the controller it built; and puts the
 * translator's locale, the data shared with every view (`View::share()`) and the URL
 * generator's defaults, forced root and scheme back to what the app had at boot. What Laravel
 * Octane flushes between requests for the services Laravel itself ships, and more.
 */
final class StateFlusher
{
    /** @var array<string, mixed>|null what the view factory shared once the app was booted */
    private readonly ?array $bootShared;

    /** @var \Closure(UrlGenerator): void|null puts the URL generator's boot settings back */
    private readonly ?\Closure $bootUrl;

    private readonly string $bootLocale;

    /** @param Application $booted the application, bootstrapped, before its first request */
    public function __construct(Application $booted)
    {
        $this->bootLocale = (string) $booted->make('config')->get('app.locale', 'en');
        $this->bootShared = $booted->resolved('view') ? $booted->make('view')->getShared() : null;
        $url = $booted->resolved('url') ? $booted->make('url') : null;
        $this->bootUrl = $url instanceof UrlGenerator ? self::urlSettings($url) : null;
    }

    /**
     * What a localization middleware (`URL::defaults()`) or a tenant (`URL::forceRootUrl()`)
     * sets on the URL generator built at boot is its request's: the next request's links
     * pointed at the previous tenant.
     *
     * @return \Closure(UrlGenerator): void
     */
    private static function urlSettings(UrlGenerator $url): \Closure
    {
        [$defaults, $root, $scheme] = (fn (): array => [$this->getDefaultParameters(), $this->forcedRoot, $this->forceScheme])->call($url);

        return static function (UrlGenerator $url) use ($defaults, $root, $scheme): void {
            (function () use ($defaults, $root, $scheme): void {
                $this->routeUrl()->defaultParameters = $defaults;
                $this->forcedRoot = $root;
                $this->forceScheme = $scheme;
                $this->cachedRoot = null;
                $this->cachedScheme = null;
            })->call($url);
        };
    }

    public function flush(Application $app): void
    {
        $app->forgetScopedInstances();
        if ($app->resolved('session')) {
            $app->make('session')->forgetDrivers();
            $app->forgetInstance('session.store');
        }
        if ($app->resolved('auth')) {
            $auth = $app->make('auth');
            $auth->forgetGuards();
            $app->forgetInstance('auth.driver');
        }
        if ($app->resolved('cookie')) {
            $app->make('cookie')->flushQueuedCookies();
        }
        if ($app->resolved('translator')) {
            // The boot locale: App::setLocale() also wrote the request's into its config.
            $app->make('translator')->setLocale($this->bootLocale);
        }
        if ($app->resolved('db')) {
            foreach ($app->make('db')->getConnections() as $connection) {
                $connection->flushQueryLog();
                $this->rollBackLeftTransaction($connection);
            }
        }
        if ($app->resolved('log')) {
            $logger = $app->make('log')->driver();
            if (method_exists($logger, 'withoutContext')) {
                $logger->withoutContext();
            }
        }
        if ($app->resolved('cache')) {
            $this->flushArrayStores($app->make('cache'));
        }
        if ($app->resolved('router')) {
            $this->forgetCurrentRoute($app->make('router'));
        }
        if ($this->bootUrl !== null && $app->resolved('url') && ($url = $app->make('url')) instanceof UrlGenerator) {
            ($this->bootUrl)($url);
        }
        if ($this->bootShared !== null && $app->resolved('view')) {
            // A middleware's View::share('user', ...) is the request's, as under php-fpm.
            $view = $app->make('view');
            if ($view instanceof ViewFactory) {
                $shared = $this->bootShared;
                (function () use ($shared): void {
                    $this->shared = $shared;
                })->call($view);
            }
        }
        $app->forgetInstance('request');
        Str::flushCache();
    }

    /**
     * A transaction the request began and never ended (it failed between beginTransaction()
     * and commit()) is rolled back, as php-fpm's closed connection does: kept, the next
     * request ran inside it and saw the previous one's uncommitted rows.
     */
    private function rollBackLeftTransaction(ConnectionInterface $connection): void
    {
        if ($connection->transactionLevel() === 0) {
            return;
        }
        try {
            $connection->rollBack(0);
        } catch (\Throwable) {
            if ($connection instanceof Connection) {
                $connection->disconnect();
            }
        }
    }

    /**
     * An `array` store lives as long as a php-fpm request: built at boot (the rate limiter
     * builds the default store), it would hand one request's values to the next.
     */
    private function flushArrayStores(CacheManager $cache): void
    {
        $stores = (fn (): array => $this->stores)->call($cache);
        foreach ($stores as $store) {
            if ($store->getStore() instanceof ArrayStore) {
                $store->getStore()->flush();
            }
        }
    }

    /**
     * The router and its routes are built at boot. A route keeps the controller it built (with
     * the request its constructor was given) and the router its current route (what an error
     * page for an unmatched path finds in Route::current()): both were this request's.
     */
    private function forgetCurrentRoute(Router $router): void
    {
        $router->current()?->flushController();
        (function (): void {
            $this->current = null;
            $this->currentRequest = null;
        })->call($router);
    }
}
