<?php

declare(strict_types=1);

namespace RR\Nextcloud\Db;

use Doctrine\DBAL\Driver\Middleware\AbstractStatementMiddleware;
use Doctrine\DBAL\Driver\Result;

/** What StatementCacheConnection::prepare() gives for a cached statement: one per prepare(). */
final class StatementHandle extends AbstractStatementMiddleware
{
    public function __construct(private readonly CachedStatement $cached)
    {
        parent::__construct($cached->statement);
        $cached->live++;
    }

    /** {@inheritDoc} */
    public function execute($params = null): Result
    {
        $result = parent::execute($params);
        $this->cached->executed($result);
        return new ResultHandle($result, $this->cached);
    }

    public function __destruct()
    {
        $this->cached->release();
    }
}
