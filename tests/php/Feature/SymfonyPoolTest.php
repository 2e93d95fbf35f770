<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

/** {@see SymfonyTest} in pool mode: one worker process under the master serves every request. */
final class SymfonyPoolTest extends SymfonyTest
{
    protected static function env(string $var): array
    {
        return self::onePoolWorker($var);
    }
}
