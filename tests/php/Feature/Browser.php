<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

/** One user: a cookie jar in front of {@see Server::request()}. */
final class Browser
{
    /** @var array<string, string> */
    private array $cookies = [];

    public function __construct(private readonly Server $server)
    {
    }

    /**
     * @param list<string> $headers
     * @return array{status: int, headers: array<string, list<string>>, body: string}
     */
    public function request(string $method, string $path, array $headers = [], string $body = ''): array
    {
        if ($this->cookies !== []) {
            $pairs = [];
            foreach ($this->cookies as $name => $value) {
                $pairs[] = "$name=$value";
            }
            $headers[] = 'Cookie: ' . implode('; ', $pairs);
        }
        $response = $this->server->request($method, $path, $headers, $body);
        foreach ($response['headers']['set-cookie'] ?? [] as $line) {
            [$pair] = explode(';', $line, 2);
            [$name, $value] = explode('=', $pair, 2) + [1 => ''];
            $expired = preg_match('~expires=([^;]+)~i', $line, $m) === 1 && strtotime($m[1]) < time();
            if ($value === '' || $value === 'deleted' || $expired) {
                unset($this->cookies[$name]);
            } else {
                $this->cookies[$name] = $value;
            }
        }

        return $response;
    }

    /** @return array<string, mixed> the JSON body of a 200 answer */
    public function json(string $path): array
    {
        $response = $this->request('GET', $path);
        \PHPUnit\Framework\Assert::assertSame(200, $response['status'], $response['body'] . $this->server->log());

        return json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR);
    }
}
