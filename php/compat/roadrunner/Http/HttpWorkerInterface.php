<?php

declare(strict_types=1);

namespace Spiral\RoadRunner\Http;

interface HttpWorkerInterface
{
    public function waitRequest(): ?Request;

    /**
     * @param string|\Generator<mixed, string, mixed, string|null> $body a generator streams
     *     its chunks
     * @param array<string, list<string>|string> $headers
     */
    public function respond(int $status, string|\Generator $body = '', array $headers = [], bool $endOfStream = true): void;
}
