<?php

declare(strict_types=1);

namespace RR\Http;

use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestInterface;

/** Serves PSR-7 requests; the same shape as RoadRunner's `Spiral\RoadRunner\Http\PSR7WorkerInterface`. */
interface PSR7WorkerInterface
{
    /** The next request, or null when the server is shutting down: end the loop. */
    public function waitRequest(): ?ServerRequestInterface;

    public function respond(ResponseInterface $response): void;

    /** The worker underneath, e.g. for `getWorker()->error((string) $e)`. */
    public function getWorker(): HttpWorkerInterface|\RR\Worker;
}
