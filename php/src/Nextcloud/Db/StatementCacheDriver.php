<?php

declare(strict_types=1);

namespace RR\Nextcloud\Db;

use Doctrine\DBAL\Driver;
use Doctrine\DBAL\Driver\Middleware\AbstractDriverMiddleware;
use RR\Nextcloud\Privates;

/**
 * The database driver, wrapped so that each connection it opens keeps its prepared statements
 * (StatementCacheConnection). install() puts it under Nextcloud's connection, for SQLite only:
 * the driver this was measured and tested with.
 */
final class StatementCacheDriver extends AbstractDriverMiddleware
{
    /** @var list<\WeakReference<StatementCacheConnection>> */
    private array $connections = [];

    /**
     * Wraps the driver of Nextcloud's database connection; a connection opened from then on
     * keeps its statements. Returns null (and changes nothing) for another driver.
     */
    public static function install(\Doctrine\DBAL\Connection $connection): ?self
    {
        return Privates::in(\Doctrine\DBAL\Connection::class, static function (object $connection): ?StatementCacheDriver {
            if (!isset($connection->_driver) || $connection->_driver::class !== Driver\PDO\SQLite\Driver::class) {
                return null;
            }
            return $connection->_driver = new StatementCacheDriver($connection->_driver);
        })($connection);
    }

    /** {@inheritDoc} */
    public function connect(
        #[\SensitiveParameter]
        array $params,
    ) {
        $connection = new StatementCacheConnection(parent::connect($params));
        $this->connections = array_values(array_filter(
            $this->connections,
            static fn (\WeakReference $c): bool => $c->get() !== null,
        ));
        $this->connections[] = \WeakReference::create($connection);
        return $connection;
    }

    /** The end of a request, for every connection still open (StatementCacheConnection::endRequest()). */
    public function endRequest(): void
    {
        foreach ($this->connections as $reference) {
            $reference->get()?->endRequest();
        }
    }
}
