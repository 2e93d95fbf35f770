<?php

declare(strict_types=1);

namespace RR\Nextcloud\Db;

use Doctrine\DBAL\Driver\Result;
use Doctrine\DBAL\Driver\Statement;

/**
 * A prepared statement StatementCacheConnection keeps for its SQL, and how many of the handles
 * and results it gave out for it are still alive. While one is, the statement is in use and
 * the SQL gets a statement of its own; once none is, the statement is reset, which ends its
 * read of the database as destroying it would have (SQLite keeps a statement's snapshot open
 * until it is reset or finalized).
 */
final class CachedStatement
{
    /** Handles and results given out and not yet destroyed. */
    public int $live = 0;

    /** The result of the statement's last execution: its free() resets the statement. */
    private ?Result $last = null;

    public function __construct(public readonly Statement $statement)
    {
    }

    public function executed(Result $result): void
    {
        $this->last = $result;
    }

    /** A handle or a result is gone; the last one resets the statement. */
    public function release(): void
    {
        if (--$this->live === 0) {
            $this->reset();
        }
    }

    /** Ends the statement's current execution (closeCursor()), if it has one. */
    public function reset(): void
    {
        $last = $this->last;
        $this->last = null;
        $last?->free();
    }
}
