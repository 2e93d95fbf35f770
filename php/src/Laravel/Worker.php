<?php

declare(strict_types=1);

namespace RR\Laravel;

use Illuminate\Contracts\Http\Kernel as HttpKernel;
use Illuminate\Foundation\Application;
use Illuminate\Http\Request;
use Illuminate\Http\UploadedFile;
use RR\Http\HttpWorkerInterface;
use RR\HttpFoundation\RequestFactory;
use RR\HttpFoundation\ResponseSender;

/**
 * Serves a Laravel application from rr's worker loop: booted once (configuration, providers),
 * then each request in a fresh {@see Sandbox}, its answer sent, the terminate middleware and
 * `terminating()` callbacks run (the client already has its answer), and request state
 * flushed ({@see StateFlusher}).
 *
 * ```php
 * $app = require __DIR__ . '/bootstrap/app.php';
 * exit((new RR\Laravel\Worker($app))->run(new RR\Worker()));
 * ```
 */
final class Worker
{
    private readonly Sandbox $sandboxes;

    public function __construct(private readonly Application $app)
    {
        $this->sandboxes = new Sandbox($app);
    }

    /** @return int the exit status: 0 once the server shuts down */
    public function run(HttpWorkerInterface|\RR\Worker $worker): int
    {
        $requests = new RequestFactory($_SERVER, UploadedFile::class);
        // Providers that build the URL generator at boot (URL::forceScheme(), route()) need a
        // request bound, as php-fpm's Kernel::handle() binds one before bootstrapping.
        $this->app->instance('request', Request::create('/', 'GET', [], [], [], $_SERVER));
        $this->app->make(HttpKernel::class)->bootstrap();
        $flusher = new StateFlusher($this->app);
        $sender = new ResponseSender($worker);
        while ($rrRequest = $worker->waitRequest()) {
            $sandbox = $this->sandboxes->open();
            try {
                $request = Request::createFromBase($requests->create($rrRequest));
                $kernel = $sandbox->make(HttpKernel::class);
                $response = $kernel->handle($request);
                $sender->send($response);
                $kernel->terminate($request, $response);
            } catch (\Throwable $e) {
                $this->fail($worker, $e);
            } finally {
                $flusher->flush($sandbox);
                $this->sandboxes->close();
            }
        }

        return 0;
    }

    private function fail(HttpWorkerInterface|\RR\Worker $worker, \Throwable $e): void
    {
        try {
            $worker->error((string) $e);
        } catch (\RR\Exception) {
            // The answer was already sent (terminate failed): the log is all that is left.
            error_log('rr: ' . $e);
        }
    }
}
