<?php

declare(strict_types=1);

namespace RR\Http;

use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestFactoryInterface;
use Psr\Http\Message\ServerRequestInterface;
use Psr\Http\Message\StreamFactoryInterface;
use Psr\Http\Message\StreamInterface;
use Psr\Http\Message\UploadedFileFactoryInterface;
use Psr\Http\Message\UploadedFileInterface;
use Psr\Http\Message\UriFactoryInterface;
use Psr\Http\Message\UriInterface;

/**
 * Turns rr requests into PSR-7 server requests and PSR-7 responses into rr answers.
 *
 * ```php
 * $factory = new Nyholm\Psr7\Factory\Psr17Factory();
 * $worker = new RR\Http\PSR7Worker(new RR\Worker(), $factory, $factory, $factory);
 * while ($request = $worker->waitRequest()) {
 *     try {
 *         $worker->respond($app->handle($request));
 *     } catch (\Throwable $e) {
 *         $worker->getWorker()->error((string) $e);
 *     }
 * }
 * ```
 */
final class PSR7Worker implements PSR7WorkerInterface
{
    /** Bodies of a known size up to this go out in one respond(); others are streamed. */
    public const STREAM_THRESHOLD = 1024 * 1024;

    /** The size of the chunks a streamed body is sent in. */
    public const CHUNK_SIZE = 64 * 1024;

    private const PROTOCOL_VERSIONS = [
        'HTTP/1.1' => '1.1',
        'HTTP/2.0' => '2',
        'HTTP/1.0' => '1.0',
    ];

    /** Builds each request's server params on `$_SERVER` as it was at boot. */
    private readonly ServerParams $serverParams;

    /**
     * Real paths of the current request's upload temp files. rr deletes them at the next
     * waitRequest(), possibly before sendFile() has opened one, so those bodies are streamed.
     *
     * @var array<string, true>
     */
    private array $uploadPaths = [];

    /** Builds each request's URI from rr's parts; null: the URI string goes to the request factory. */
    private readonly ?UriFactoryInterface $uriFactory;

    /**
     * @param UriFactoryInterface|null $uriFactory builds the URI from rr's parts, so no URI is ever
     *     re-parsed; defaults to $requestFactory when it is also a URI factory (nyholm's is)
     */
    public function __construct(
        private readonly HttpWorkerInterface|\RR\Worker $worker,
        private readonly ServerRequestFactoryInterface $requestFactory,
        private readonly StreamFactoryInterface $streamFactory,
        private readonly UploadedFileFactoryInterface $uploadsFactory,
        ?UriFactoryInterface $uriFactory = null,
    ) {
        $this->serverParams = new ServerParams($_SERVER);
        $this->uriFactory = $uriFactory
            ?? ($requestFactory instanceof UriFactoryInterface ? $requestFactory : null);
    }

    public function getWorker(): HttpWorkerInterface|\RR\Worker
    {
        return $this->worker;
    }

    /**
     * The next request as PSR-7, or null when the server is shutting down. Never throws for a
     * request rr accepted: one the PSR-7 implementation refuses (its own rules on URIs or
     * headers) is answered 400 here and the next one is waited for.
     */
    public function waitRequest(): ?ServerRequestInterface
    {
        while (true) {
            $this->uploadPaths = [];
            $request = $this->worker->waitRequest();
            if ($request === null) {
                return null;
            }
            try {
                return $this->toPsr($request);
            } catch (\InvalidArgumentException $e) {
                $this->worker->respond(
                    400,
                    json_encode(['error' => 'bad request: ' . $e->getMessage(), 'code' => 'bad_request']),
                    ['Content-Type' => ['application/json']],
                );
            }
        }
    }

    private function toPsr(object $request): ServerRequestInterface
    {
        $headers = $request->headers;
        // Like RoadRunner: code that reads $_SERVER directly sees the current request.
        $_SERVER = $server = $this->serverParams->of($request);

        $psr = $this->requestFactory
            ->createServerRequest($request->method, $this->uri($request), $server)
            ->withProtocolVersion(self::PROTOCOL_VERSIONS[$request->protocol] ?? '1.1');
        // Each with*() clones the request: skip those that would set what is already empty.
        $cookies = $request->cookies;
        if ($cookies !== []) {
            $psr = $psr->withCookieParams($cookies);
        }
        $query = $request->query;
        if ($query !== []) {
            $psr = $psr->withQueryParams($query);
        }
        foreach ($headers as $name => $values) {
            $psr = $psr->withHeader((string) $name, $values);
        }
        foreach ($request->attributes as $name => $value) {
            $psr = $psr->withAttribute((string) $name, $value);
        }
        $uploads = $request->uploads;
        if ($uploads !== []) {
            $psr = $psr->withUploadedFiles($this->wrapUploads($uploads));
        }
        // rr parses urlencoded and multipart bodies only; JSON stays in the body, as with RoadRunner.
        $parsed = $request->parsed;
        if ($parsed !== []) {
            $psr = $psr->withParsedBody($parsed);
        }
        // A body larger than http.body_buffer_size waits in a temp file: it is streamed from
        // there, never loaded whole.
        if (($request->bodyFile ?? null) !== null) {
            $psr = $psr->withBody($this->streamFactory->createStreamFromResource($request->bodyStream()));
        } elseif (($body = $request->body) !== '') {
            $psr = $psr->withBody($this->streamFactory->createStream($body));
        }

        return $psr;
    }

    /** The request's URI from rr's parts (scheme, host, port, path, query), never re-parsed. */
    private function uri(object $request): UriInterface|string
    {
        if ($this->uriFactory === null) {
            return $request->uri;
        }

        return $this->uriFactory->createUri()
            ->withScheme($request->scheme)
            ->withHost($request->host)
            ->withPort($request->port)
            ->withPath($request->path)
            ->withQuery($request->queryString);
    }

    public function respond(ResponseInterface $response): void
    {
        $status = $response->getStatusCode();
        $headers = $response->getHeaders();
        $body = $response->getBody();

        $path = $this->localFile($body);
        if ($path !== null) {
            $this->worker->sendFile($path, $status, $headers);
            return;
        }
        $size = $body->getSize();
        if ($size !== null && $size <= self::STREAM_THRESHOLD && $body->isSeekable()) {
            $this->worker->respond($status, (string) $body, $headers);
            return;
        }
        $this->stream($status, $headers, $body);
    }

    /**
     * Sends the body in CHUNK_SIZE pieces so that it never sits in memory whole; the status and
     * headers go with the first piece, the end of the stream with the last.
     *
     * @param array<string, list<string>> $headers
     */
    private function stream(int $status, array $headers, StreamInterface $body): void
    {
        if ($body->isSeekable()) {
            $body->rewind();
        }
        $first = true;
        $buffer = '';
        while (!$body->eof()) {
            $chunk = $body->read(self::CHUNK_SIZE);
            if ($chunk === '' && !$body->eof()) {
                // Ending here would pass what was read for the whole body: the caller's
                // error() (or the next waitRequest()) cuts the answer off instead.
                throw new \RuntimeException('the response body gave no bytes before its end');
            }
            $buffer .= $chunk;
            if (\strlen($buffer) >= self::CHUNK_SIZE) {
                $this->worker->respond($status, $buffer, $first ? $headers : null, false);
                $first = false;
                $buffer = '';
            }
        }
        $this->worker->respond($status, $buffer, $first ? $headers : null, true);
    }

    /** The path of a body that is a readable local file rr can stream itself, else null. */
    private function localFile(StreamInterface $body): ?string
    {
        if ($body->getMetadata('wrapper_type') !== 'plainfile'
            || !$body->isSeekable()
            || !$body->isReadable()) {
            return null;
        }
        $uri = $body->getMetadata('uri');
        if (!\is_string($uri)) {
            return null;
        }
        if (str_starts_with($uri, 'file://')) {
            $uri = substr($uri, 7);
        }
        $path = realpath($uri);
        if ($path === false || isset($this->uploadPaths[$path]) || !is_file($path) || !is_readable($path)) {
            return null;
        }

        return $path;
    }

    /**
     * @param array<array-key, mixed> $files rr's uploads, nested like their field names
     * @return array<array-key, mixed> the same tree with UploadedFileInterface leaves
     */
    private function wrapUploads(array $files): array
    {
        $wrapped = [];
        foreach ($files as $key => $file) {
            $wrapped[$key] = \is_int($file['error'] ?? null)
                ? $this->wrapUpload($file)
                : $this->wrapUploads($file);
        }

        return $wrapped;
    }

    /** @param array{name: string, mime: string, size: int, error: int, tmpName: string} $file */
    private function wrapUpload(array $file): UploadedFileInterface
    {
        if ($file['error'] === \UPLOAD_ERR_OK) {
            $this->uploadPaths[realpath($file['tmpName']) ?: $file['tmpName']] = true;
            // PSR-17 takes a stream, not a path, so the temp file is opened here.
            $stream = $this->streamFactory->createStreamFromFile($file['tmpName']);
        } else {
            $stream = $this->streamFactory->createStream();
        }

        return $this->uploadsFactory->createUploadedFile(
            $stream,
            $file['size'],
            $file['error'],
            $file['name'],
            $file['mime'],
        );
    }
}
