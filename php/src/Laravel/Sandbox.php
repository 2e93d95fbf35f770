<?php

declare(strict_types=1);

namespace RR\Laravel;

use Illuminate\Container\Container;
use Illuminate\Contracts\Auth\Access\Gate as GateContract;
use Illuminate\Contracts\Foundation\Application as ApplicationContract;
use Illuminate\Contracts\Http\Kernel as HttpKernel;
use Illuminate\Events\Dispatcher;
use Illuminate\Foundation\Application;
use Illuminate\Pagination\PaginationServiceProvider;
use Illuminate\Pagination\PaginationState;
use Illuminate\Support\Facades\Facade;

/**
 * The per-request copy of a booted Laravel application. A clone shares every service the
 * booted app already built but has its own container arrays: a singleton first resolved
 * during the request lives in the sandbox only and is gone with it. The services built at boot
 * that hold the application (with the events dispatcher and the paginator's resolvers) are
 * pointed at the sandbox while it serves, and back after; the configuration repository is
 * cloned for it.
 */
final class Sandbox
{
    /** Services that keep the container they were built with, and the setter to change it. */
    private const HOLDERS = [
        'router' => 'setContainer',
        GateContract::class => 'setContainer',
        'view' => 'setContainer',
        'validator' => 'setContainer',
        'session' => 'setContainer',
        'auth' => 'setApplication',
        'db' => 'setApplication',
        'queue' => 'setApplication',
        'filesystem' => 'setApplication',
        'mail.manager' => 'setApplication',
        'broadcast' => 'setApplication',
    ];

    public function __construct(private readonly Application $app)
    {
    }

    /** A fresh sandbox, made the current application (container instance, facades). */
    public function open(): Application
    {
        $sandbox = clone $this->app;
        // Configuration changed during a request (config([...])) stays in its sandbox.
        if ($this->app->resolved('config')) {
            $sandbox->instance('config', clone $this->app->make('config'));
        }
        $this->install($sandbox);

        return $sandbox;
    }

    /** The booted application current again. */
    public function close(): void
    {
        $this->install($this->app);
    }

    private function install(Application $app): void
    {
        $app->instance('app', $app);
        $app->instance(Container::class, $app);
        $app->instance(ApplicationContract::class, $app);
        $app->instance(Application::class, $app);
        Container::setInstance($app);
        Facade::clearResolvedInstances();
        Facade::setFacadeApplication($app);
        if ($app->getProviders(PaginationServiceProvider::class) !== []) {
            // Its resolvers read the page and path from the application they were given at
            // boot, whose request is not the one being served.
            PaginationState::resolveUsing($app);
        }
        if ($app->resolved(HttpKernel::class)) {
            $kernel = $app->make(HttpKernel::class);
            if (method_exists($kernel, 'setApplication')) {
                $kernel->setApplication($app);
            }
        }
        if ($app->resolved('events')) {
            // The dispatcher builds class listeners from its container (one taking the Request
            // in its constructor got the boot application's) and has no setter for it.
            $events = $app->make('events');
            if ($events instanceof Dispatcher) {
                (function () use ($app): void {
                    $this->container = $app;
                })->call($events);
            }
        }
        foreach (self::HOLDERS as $service => $setter) {
            if (!$app->resolved($service)) {
                continue;
            }
            $instance = $app->make($service);
            if (method_exists($instance, $setter)) {
                $instance->{$setter}($app);
            }
        }
    }
}
