<?php

declare(strict_types=1);

namespace RR\Nextcloud\SpeedUps;

use OCP\Server;
use RR\Nextcloud\Db\StatementCacheDriver;

/** Database connections keep their prepared statements across requests (SQLite only). */
final class PreparedStatements implements SpeedUp
{
    private ?StatementCacheDriver $driver = null;

    /** Connections opened from now on keep their statements (the boot's is closed before serving). */
    public function install(): void
    {
        $this->driver = StatementCacheDriver::install(Server::get(\OC\DB\Connection::class));
    }

    /** php-fpm destroys every statement at the end of the request: no read stays open. */
    public function endRequest(): void
    {
        $this->driver?->endRequest();
    }
}
