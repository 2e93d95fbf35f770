<?php

declare(strict_types=1);

namespace Spiral\RoadRunner\Http;

use RR\RoadRunner\Bridge;
use Spiral\RoadRunner\Worker;
use Spiral\RoadRunner\WorkerInterface;

/** RoadRunner's raw HTTP worker on rr. */
final class HttpWorker implements HttpWorkerInterface
{
    private readonly Bridge $bridge;

    public function __construct(private readonly WorkerInterface $worker)
    {
        $this->bridge = self::bridgeOf($worker);
    }

    /** @internal */
    public static function bridgeOf(WorkerInterface $worker): Bridge
    {
        if (!$worker instanceof Worker) {
            throw new \InvalidArgumentException(
                'on rr, HTTP workers take the worker of Spiral\RoadRunner\Worker::create(), not a ' . $worker::class,
            );
        }

        return $worker->bridge();
    }

    public function getWorker(): WorkerInterface
    {
        return $this->worker;
    }

    public function waitRequest(): ?Request
    {
        $request = $this->bridge->waitRequest();

        return $request === null ? null : Request::from($request);
    }

    public function respond(int $status, string|\Generator $body = '', array $headers = [], bool $endOfStream = true): void
    {
        if (\is_string($body)) {
            $this->bridge->respond($status, $body, $headers, $endOfStream);

            return;
        }
        $head = $headers;
        foreach ($body as $chunk) {
            $this->bridge->respond($status, (string) $chunk, $head, false);
            $head = null;
        }
        $this->bridge->respond($status, (string) $body->getReturn(), $head, $endOfStream);
    }
}
