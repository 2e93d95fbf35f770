<?php

declare(strict_types=1);

namespace Spiral\RoadRunner;

use RR\RoadRunner\Bridge;

/**
 * `Worker::create()` on rr: the process's one RR\Worker (configured by .rr.yaml and `rr.*`
 * ini settings), for Http\PSR7Worker and Http\HttpWorker.
 */
final class Worker implements WorkerInterface
{
    private static ?self $instance = null;

    private function __construct(private readonly Bridge $bridge)
    {
    }

    /** RoadRunner's arguments (side-effect interception, a logger) have no meaning on rr. */
    public static function create(mixed ...$ignored): self
    {
        if (!class_exists(\RR\Worker::class)) {
            throw new \RuntimeException('Spiral\RoadRunner\Worker::create(): the rr extension is not loaded (php -d extension=rr.so)');
        }

        return self::$instance ??= new self(new Bridge(new \RR\Worker()));
    }

    /** @internal the rr side, for the Http workers */
    public function bridge(): Bridge
    {
        return $this->bridge;
    }

    public function waitPayload(): ?Payload
    {
        throw new \LogicException('rr serves HTTP only: use Spiral\RoadRunner\Http\PSR7Worker or HttpWorker');
    }

    public function respond(Payload $payload): void
    {
        throw new \LogicException('rr serves HTTP only: use Spiral\RoadRunner\Http\PSR7Worker or HttpWorker');
    }

    public function error(string $error): void
    {
        $this->bridge->error($error);
    }

    public function stop(): void
    {
        $this->bridge->stop();
    }
}
