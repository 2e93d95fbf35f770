<?php

declare(strict_types=1);

namespace RR\RoadRunner;

use RR\Http\HttpWorkerInterface;

/**
 * The rr worker behind the RoadRunner compatibility classes (php/compat/roadrunner). It knows
 * whether the current request is still unanswered: RoadRunner workers commonly answer a 500
 * and then call `getWorker()->error()`, which on rr may only log once the answer is out.
 */
final class Bridge implements HttpWorkerInterface
{
    private bool $pending = false;

    public function __construct(private readonly HttpWorkerInterface|\RR\Worker $worker)
    {
    }

    public function waitRequest(): ?object
    {
        $request = $this->worker->waitRequest();
        $this->pending = $request !== null;

        return $request;
    }

    public function respond(int $status, ?string $body = null, ?array $headers = null, bool $endOfStream = true): void
    {
        $this->worker->respond($status, $body, $headers, $endOfStream);
        if ($endOfStream) {
            $this->pending = false;
        }
    }

    public function sendFile(string $path, int $status = 200, ?array $headers = null): void
    {
        $this->worker->sendFile($path, $status, $headers);
        $this->pending = false;
    }

    /** A 500 for the current request while it is unanswered; after that, a log line. */
    public function error(string $message): void
    {
        if ($this->pending) {
            $this->pending = false;
            $this->worker->error($message);

            return;
        }
        error_log($message);
    }

    public function stop(): void
    {
        if ($this->worker instanceof \RR\Worker) {
            $this->worker->stop();
        }
    }
}
