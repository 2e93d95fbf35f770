<?php

declare(strict_types=1);

namespace Spiral\RoadRunner\Http;

use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestInterface;

interface PSR7WorkerInterface
{
    public function waitRequest(): ?ServerRequestInterface;

    public function respond(ResponseInterface $response): void;
}
