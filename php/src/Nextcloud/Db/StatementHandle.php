<?php

declare(strict_types=1);

namespace RR\Nextcloud\Db;

use Doctrine\DBAL\Driver\Middleware\AbstractStatementMiddleware;
use Doctrine\DBAL\Driver\Result;
use Doctrine\DBAL\ParameterType;

/** What StatementCacheConnection::prepare() gives for a cached statement: one per prepare(). */
final class StatementHandle extends AbstractStatementMiddleware
{
    public function __construct(private readonly CachedStatement $cached)
    {
        parent::__construct($cached->statement);
        $cached->live++;
    }

    /** {@inheritDoc} */
    public function bindValue($param, $value, $type = ParameterType::STRING)
    {
        $this->cached->bound($param);
        return parent::bindValue(...func_get_args());
    }

    /** {@inheritDoc} */
    public function bindParam($param, &$variable, $type = ParameterType::STRING, $length = null)
    {
        // A reference bound to the caller's variable: not followed, the statement is not reused.
        $this->cached->broken = true;
        return parent::bindParam($param, $variable, ...array_slice(func_get_args(), 2));
    }

    /** {@inheritDoc} */
    public function execute($params = null): Result
    {
        if ($params !== null) {
            // Parameters given to execute() (deprecated in DBAL 3): not followed either.
            $this->cached->broken = true;
        }
        try {
            $result = parent::execute($params);
        } catch (\Throwable $e) {
            $this->cached->broken = true;
            throw $e;
        }
        $this->cached->executed($result);
        return new ResultHandle($result, $this->cached);
    }

    public function __destruct()
    {
        $this->cached->release();
    }
}
