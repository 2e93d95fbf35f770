<?php

declare(strict_types=1);

namespace Spiral\RoadRunner\Http;

use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestFactoryInterface;
use Psr\Http\Message\ServerRequestInterface;
use Psr\Http\Message\StreamFactoryInterface;
use Psr\Http\Message\UploadedFileFactoryInterface;
use Spiral\RoadRunner\WorkerInterface;

/** RoadRunner's PSR-7 worker on rr: RR\Http\PSR7Worker under RoadRunner's names. */
final class PSR7Worker implements PSR7WorkerInterface
{
    private readonly \RR\Http\PSR7Worker $worker;

    public function __construct(
        private readonly WorkerInterface $roadRunner,
        ServerRequestFactoryInterface $requestFactory,
        StreamFactoryInterface $streamFactory,
        UploadedFileFactoryInterface $uploadsFactory,
    ) {
        $this->worker = new \RR\Http\PSR7Worker(HttpWorker::bridgeOf($roadRunner), $requestFactory, $streamFactory, $uploadsFactory);
    }

    public function getWorker(): WorkerInterface
    {
        return $this->roadRunner;
    }

    public function waitRequest(): ?ServerRequestInterface
    {
        return $this->worker->waitRequest();
    }

    public function respond(ResponseInterface $response): void
    {
        $this->worker->respond($response);
    }
}
