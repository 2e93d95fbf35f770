<?php

declare(strict_types=1);

namespace Spiral\RoadRunner\Http;

/**
 * RoadRunner's request: like rr's, but a parsed form travels as JSON in `body` with `parsed`
 * true (getParsedBody() decodes it), as RoadRunner sends it.
 */
final class Request
{
    public string $remoteAddr = '127.0.0.1';

    public string $protocol = 'HTTP/1.0';

    public string $method = 'GET';

    public string $uri = 'http://localhost';

    /** @var array<string, list<string>> */
    public array $headers = [];

    /** @var array<array-key, mixed> */
    public array $cookies = [];

    /** @var array<array-key, mixed> */
    public array $uploads = [];

    /** @var array<string, mixed> */
    public array $attributes = [];

    /** @var array<array-key, mixed> */
    public array $query = [];

    public string $body = '';

    public bool $parsed = false;

    /** @param object $request an `RR\Request` */
    public static function from(object $request): self
    {
        $self = new self();
        $self->remoteAddr = $request->remoteAddr;
        $self->protocol = $request->protocol;
        $self->method = $request->method;
        $self->uri = $request->uri;
        $self->headers = $request->headers;
        $self->cookies = $request->cookies;
        $self->uploads = $request->uploads;
        $self->attributes = $request->attributes;
        $self->query = $request->query;
        $parsed = $request->parsed;
        $self->parsed = $parsed !== [];
        $self->body = $self->parsed ? json_encode($parsed, \JSON_THROW_ON_ERROR) : $request->body;

        return $self;
    }

    public function getRemoteAddr(): string
    {
        return (string) ($this->attributes['ipAddress'] ?? $this->remoteAddr);
    }

    /** @return array<array-key, mixed>|null */
    public function getParsedBody(): ?array
    {
        return $this->parsed ? (array) json_decode($this->body, true, 512, \JSON_THROW_ON_ERROR) : null;
    }
}
