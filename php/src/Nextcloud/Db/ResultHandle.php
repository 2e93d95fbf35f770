<?php

declare(strict_types=1);

namespace RR\Nextcloud\Db;

use Doctrine\DBAL\Driver\Middleware\AbstractResultMiddleware;
use Doctrine\DBAL\Driver\Result;

/** A result of a cached statement: while it lives, the statement is in use. */
final class ResultHandle extends AbstractResultMiddleware
{
    public function __construct(Result $result, private readonly CachedStatement $cached)
    {
        parent::__construct($result);
        $cached->live++;
    }

    public function __destruct()
    {
        $this->cached->release();
    }
}
