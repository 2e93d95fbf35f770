<?php

declare(strict_types=1);

namespace RR\Nextcloud\Db;

use Doctrine\DBAL\Driver\Middleware\AbstractConnectionMiddleware;
use Doctrine\DBAL\Driver\Statement;

/**
 * A database connection that keeps its prepared statements by SQL, across requests, instead of
 * preparing the same SQL again each time (SQLite parses and compiles every prepare: ~25 us, 17
 * per PROPFIND). A kept statement is given out only when nothing given out for it before is
 * alive; otherwise (the same query run again while its results are still being read) the SQL
 * gets a new statement, as without the cache. A statement is reset (and its parameters
 * unbound) as soon as the last handle and result given out for it are destroyed, the moment
 * destroying the statement would have ended its read, and every statement is reset at the end
 * of each request. A statement whose execution failed is not given out again.
 */
final class StatementCacheConnection extends AbstractConnectionMiddleware
{
    /** Statements kept at most; the least recently used one not in use makes room. */
    public const MAX = 256;

    /** @var array<string, CachedStatement> by SQL, least recently used first */
    private array $cached = [];

    public function prepare(string $sql): Statement
    {
        $cached = $this->cached[$sql] ?? null;
        if ($cached !== null && $cached->broken) {
            unset($this->cached[$sql]);
            $cached = null;
        }
        if ($cached !== null) {
            if ($cached->live > 0) {
                return parent::prepare($sql);
            }
            unset($this->cached[$sql]);
            $this->cached[$sql] = $cached;
            return new StatementHandle($cached);
        }
        $statement = parent::prepare($sql);
        if (count($this->cached) >= self::MAX && !$this->evictOne()) {
            return $statement;
        }
        $cached = $this->cached[$sql] = new CachedStatement($statement);
        return new StatementHandle($cached);
    }

    /**
     * The end of a request: every kept statement is reset, and one still in use (held by
     * garbage not yet collected, or by something that outlives the request) is no longer kept.
     */
    public function endRequest(): void
    {
        foreach ($this->cached as $sql => $cached) {
            $cached->reset();
            if ($cached->live > 0 || $cached->broken) {
                unset($this->cached[$sql]);
            }
        }
    }

    /** How many statements are kept. */
    public function count(): int
    {
        return count($this->cached);
    }

    /**
     * The PDO object, for Nextcloud's SQLite session setup, which asks the driver connection
     * for it by this deprecated name.
     */
    public function getWrappedConnection(): mixed
    {
        return $this->getNativeConnection();
    }

    private function evictOne(): bool
    {
        foreach ($this->cached as $sql => $cached) {
            if ($cached->live === 0) {
                unset($this->cached[$sql]);
                return true;
            }
        }
        return false;
    }
}
