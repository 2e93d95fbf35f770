<?php

declare(strict_types=1);

namespace Spiral\RoadRunner;

/** RoadRunner's worker, as rr provides it: HTTP only, so payloads are not served. */
interface WorkerInterface
{
    public function waitPayload(): ?Payload;

    public function respond(Payload $payload): void;

    /** Fails the current request (a 500) or, once it was answered, logs the message. */
    public function error(string $error): void;

    public function stop(): void;
}
