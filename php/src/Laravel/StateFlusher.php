<?php

declare(strict_types=1);

namespace RR\Laravel;

use Illuminate\Foundation\Application;
use Illuminate\Support\Str;

/**
 * Empties what services built at boot (and so shared by every sandbox) collected during a
 * request: session drivers and their data, authenticated users, queued cookies, the
 * translator's locale, the database query logs, scoped instances, the log context and Str's
 * caches. What Laravel Octane flushes between requests, for the services Laravel itself ships.
 */
final class StateFlusher
{
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
        if ($app->resolved('translator') && $app->resolved('config')) {
            $app->make('translator')->setLocale((string) $app->make('config')->get('app.locale', 'en'));
        }
        if ($app->resolved('db')) {
            foreach ($app->make('db')->getConnections() as $connection) {
                $connection->flushQueryLog();
            }
        }
        if ($app->resolved('log')) {
            $logger = $app->make('log')->driver();
            if (method_exists($logger, 'withoutContext')) {
                $logger->withoutContext();
            }
        }
        $app->forgetInstance('request');
        Str::flushCache();
    }
}
