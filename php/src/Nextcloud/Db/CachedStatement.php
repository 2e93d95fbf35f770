<?php

declare(strict_types=1);

namespace RR\Nextcloud\Db;

use Doctrine\DBAL\Driver\Result;
use Doctrine\DBAL\Driver\Statement;
use Doctrine\DBAL\ParameterType;

/**
 * A prepared statement StatementCacheConnection keeps for its SQL, and how many of the handles
 * and results it gave out for it are still alive. While one is, the statement is in use and
 * the SQL gets a statement of its own; once none is, the statement is reset, which ends its
 * read of the database as destroying it would have (SQLite keeps a statement's snapshot open
 * until it is reset or finalized), and its parameters are bound to NULL again, what a new
 * statement starts with (closeCursor() leaves the values bound).
 */
final class CachedStatement
{
    /** Handles and results given out and not yet destroyed. */
    public int $live = 0;

    /**
     * An execution failed, or was given its parameters in a way this does not follow: the
     * statement may be left in a state a reset does not undo (pdo_sqlite does not reset a
     * statement whose first step failed with a constraint or a busy database), so it is not
     * given out again.
     */
    public bool $broken = false;

    /** The result of the statement's last execution: its free() resets the statement. */
    private ?Result $last = null;

    /** @var array<int|string, true> the parameters bound since the last reset */
    private array $bound = [];

    public function __construct(public readonly Statement $statement)
    {
    }

    public function executed(Result $result): void
    {
        $this->last = $result;
    }

    /** @param int|string $param */
    public function bound($param): void
    {
        $this->bound[$param] = true;
    }

    /** A handle or a result is gone; the last one resets the statement. */
    public function release(): void
    {
        if (--$this->live === 0) {
            $this->reset();
        }
    }

    /** Ends the statement's current execution (closeCursor()), and unbinds its parameters. */
    public function reset(): void
    {
        $last = $this->last;
        $this->last = null;
        $last?->free();
        $bound = $this->bound;
        $this->bound = [];
        foreach ($bound as $param => $_) {
            $this->statement->bindValue($param, null, ParameterType::NULL);
        }
    }
}
