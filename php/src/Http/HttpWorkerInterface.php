<?php

declare(strict_types=1);

namespace RR\Http;

/**
 * The raw worker API that {@see PSR7Worker} drives. The native `RR\Worker` has the same methods
 * but, being a final internal class, cannot declare this interface; PSR7Worker accepts either,
 * and tests pass a fake.
 */
interface HttpWorkerInterface
{
    /**
     * The next request, or null when the server is shutting down.
     *
     * @return object|null an `RR\Request` or an object with the same public properties
     */
    public function waitRequest(): ?object;

    /**
     * @param array<string, string|int|list<string>>|null $headers
     */
    public function respond(int $status, ?string $body = null, ?array $headers = null, bool $endOfStream = true): void;

    /**
     * @param array<string, string|int|list<string>>|null $headers
     */
    public function sendFile(string $path, int $status = 200, ?array $headers = null): void;

    /** Answers the current request with a 500 and logs the message. */
    public function error(string $message): void;
}
