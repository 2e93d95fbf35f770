<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OCP\IAppConfig;
use OCP\Server;

/**
 * The apps enabled (and the groups each is restricted to) as the worker booted with them:
 * Nextcloud keeps them in the app config, key `enabled` of each app. A booted worker loaded
 * those apps and their routes once, so an app an admin disables while it runs (`occ
 * app:disable`, the Apps page) would stay served until the pool reloads, where php-fpm stops
 * serving it within seconds (its local cache of the app config is kept 3 s). After a request
 * the values are compared with the boot's, at most once per CHECK_EVERY (loading the app
 * config costs a status.php request about 13 microseconds); a difference makes the worker
 * script ask the pool for a reload
 * (RR\Worker::reload(), see examples/nextcloud/worker.php).
 */
final class EnabledApps
{
    /** Nanoseconds between two looks (hrtime: monotonic). */
    private const CHECK_EVERY = 1_000_000_000;

    /** @var array<string, string>|null What the boot loaded; null: not booted, nothing to compare. */
    private ?array $booted = null;
    private int $checkedAt = 0;
    private bool $changed = false;

    /** At boot, before the app config is unloaded: the values this worker serves with. */
    public function remember(): void
    {
        $this->booted = self::current();
        $this->checkedAt = hrtime(true);
    }

    /**
     * After a request, before its state is reset: whether the values differ from the boot's.
     * Looked at once per CHECK_EVERY at most; once true, stays true.
     */
    public function changed(): bool
    {
        if ($this->booted === null || $this->changed) {
            return $this->changed;
        }
        $now = hrtime(true);
        if ($now - $this->checkedAt < self::CHECK_EVERY) {
            return false;
        }
        $this->checkedAt = $now;
        try {
            $this->changed = self::current() !== $this->booted;
        } catch (\Throwable $e) {
            // The database is away: the next look tries again (the request already said so).
            error_log('RR\\Nextcloud: the enabled apps could not be read: ' . $e->getMessage());
        }
        return $this->changed;
    }

    /** @return array<string, string> app => `yes`, `no` or a JSON list of groups */
    private static function current(): array
    {
        $values = Server::get(IAppConfig::class)->searchValues('enabled', false, IAppConfig::VALUE_STRING);
        ksort($values);
        return $values;
    }
}
