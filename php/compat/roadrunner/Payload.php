<?php

declare(strict_types=1);

namespace Spiral\RoadRunner;

/** RoadRunner's raw message: a body and a header string. */
final class Payload
{
    public function __construct(
        public readonly string $body = '',
        public readonly string $header = '',
    ) {
    }
}
