<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\Lock\DBLockingProvider;
use OC\Lockdown\LockdownManager;
use OCP\IDBConnection;
use OCP\IUserSession;
use OCP\Lock\ILockingProvider;
use OCP\Server;
use RR\Nextcloud\SpeedUps\SpeedUp;

/**
 * php-fpm's end of request, by hand, after Nextcloud's shutdown functions: its own end-of-request
 * work (error log, temp files, locks), the session written, the user and the filesystem
 * forgotten, and everything the request changed in the booted server put back: containers,
 * the boot services' properties, event listeners, statics (docs/nextcloud.md, "The request
 * cycle").
 */
final class RequestReset
{
    /**
     * @param list<SpeedUp> $speedUps
     */
    public function __construct(
        private readonly Containers $containers,
        private readonly Statics $statics,
        private readonly EventListeners $listeners,
        private readonly array $speedUps,
        private readonly Nginx $nginx,
        /** Compare every kept service with a fresh build first (Options::$verifyKept). */
        private readonly bool $verifyKept = false,
        private readonly ?Phases $phases = null,
    ) {
    }

    /** Throws when the state could not be put back: the worker must not serve again. */
    public function reset(): void
    {
        if ($this->verifyKept) {
            $differences = $this->containers->verify();
            if ($differences !== []) {
                throw new \LogicException('kept services differ from fresh builds: ' . implode('; ', $differences));
            }
        }
        (new \OC\Log\ErrorHandler(Server::get(\Psr\Log\LoggerInterface::class)))->onShutdown();
        Server::get(\OCP\ITempManager::class)->clean();
        self::releaseLocks(Server::get(ILockingProvider::class));
        $db = Server::get(IDBConnection::class);
        while ($db->inTransaction()) {
            // Only exit() in the middle of a transaction gets here; php-fpm would drop the
            // connection, which rolls back.
            $db->rollBack();
        }
        if (http_response_code() >= 500) {
            // The request may have failed on a lost database (a restart): Nextcloud checks its
            // connection only every 30 s and would fail on the dead one until then. The next
            // request connects anew, as under php-fpm.
            $db->close();
        }
        \OC::$server->getSession()->close();
        if (session_status() === PHP_SESSION_ACTIVE) {
            session_write_close();
        }
        Server::get(IUserSession::class)->setVolatileActiveUser(null);
        \OC::$server->setSession(new \OC\Session\Memory());
        \OC_User::setIncognitoMode(false);
        \OC_Util::tearDownFS();
        $lockdown = Server::get('LockdownManager');
        Privates::set($lockdown, LockdownManager::class, 'enabled', false);
        Privates::set($lockdown, LockdownManager::class, 'scope', null);
        $this->phases?->mark('reset.nextcloud');
        $this->containers->revert();
        foreach ($this->speedUps as $speedUp) {
            $speedUp->endRequest();
        }
        $this->phases?->mark('reset.containers');
        $this->listeners->restore();
        $this->phases?->mark('reset.listeners');
        $this->statics->restore();
        $this->phases?->mark('reset.statics');
        $this->nginx->finishHeaders();
        $this->phases?->mark('reset.headers');
    }

    /**
     * ILockingProvider::releaseAll(), php-fpm's end-of-request lock cleanup. The database
     * provider builds an UPDATE query (quoting a literal, which connects to the database) even
     * when it has nothing to release, and runs it only for shared locks it cached: when it
     * holds no lock at all, that call changes nothing, so it is left out. Any other provider,
     * or one holding a lock, gets the call.
     */
    private static function releaseLocks(ILockingProvider $provider): void
    {
        if ($provider::class === DBLockingProvider::class) {
            $idle = Privates::in(
                DBLockingProvider::class,
                static fn (DBLockingProvider $p): bool => $p->acquiredLocks === ['shared' => [], 'exclusive' => []]
                    && (!$p->cacheSharedLocks || array_filter($p->sharedLocks) === []),
            )($provider);
            if ($idle) {
                return;
            }
        }
        $provider->releaseAll();
    }
}
