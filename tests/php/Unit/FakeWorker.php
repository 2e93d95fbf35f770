<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use RR\Http\HttpWorkerInterface;

/** Hands out queued requests and records every answer, in order. */
final class FakeWorker implements HttpWorkerInterface
{
    /** @var list<array{string, mixed...}> each call as [method, ...arguments] */
    public array $calls = [];

    /** @var list<object> */
    private array $queue;

    public function __construct(object ...$requests)
    {
        $this->queue = $requests;
    }

    /**
     * A request with the properties of RR\Request, plain values unless overridden.
     *
     * @param array<string, mixed> $fields
     */
    public static function request(array $fields = []): object
    {
        return (object) ($fields + [
            'remoteAddr' => '127.0.0.1',
            'remotePort' => 50000,
            'protocol' => 'HTTP/1.1',
            'method' => 'GET',
            'uri' => 'http://localhost/',
            'requestUri' => '/',
            'scheme' => 'http',
            'host' => 'localhost',
            'port' => null,
            'path' => '/',
            'queryString' => '',
            'https' => false,
            'headers' => ['Host' => ['localhost']],
            'cookies' => [],
            'query' => [],
            'body' => '',
            'parsed' => [],
            'uploads' => [],
            'attributes' => [],
        ]);
    }

    public function waitRequest(): ?object
    {
        return array_shift($this->queue);
    }

    public function respond(int $status, ?string $body = null, ?array $headers = null, bool $endOfStream = true): void
    {
        $this->calls[] = ['respond', $status, $body, $headers, $endOfStream];
    }

    public function sendFile(string $path, int $status = 200, ?array $headers = null): void
    {
        $this->calls[] = ['sendFile', $path, $status, $headers];
    }

    public function error(string $message): void
    {
        $this->calls[] = ['error', $message];
    }
}
