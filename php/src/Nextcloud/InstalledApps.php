<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OCP\IAppConfig;
use OCP\IConfig;
use OCP\Server;

/**
 * What a worker booted with and cannot take in while it runs: the apps enabled (and the groups
 * each is restricted to), each app's installed version, and Nextcloud's own installed version.
 * Nextcloud keeps the first two in the app config (keys `enabled` and `installed_version` of each
 * app), the last in config.php (`version`).
 *
 * A booted worker loaded the apps, their routes and their classes once. An app an admin
 * disables while it runs (`occ app:disable`, the Apps page) would stay served until the pool
 * reloads, where php-fpm stops serving it within seconds (its local cache of the app config is
 * kept 3 s). An upgrade (`occ upgrade`, `occ app:update`, the updater) replaces code and
 * migrates the database: a worker still running the code of its boot against the new schema,
 * loading the new files it had not loaded yet beside the old classes, is what php-fpm never
 * runs (it reads changed files within opcache.revalidate_freq).
 *
 * After a request the values are compared with the boot's, at most once per CHECK_EVERY
 * (loading the app config costs a status.php request about 13 microseconds); a difference
 * makes the worker script ask the pool for a reload (RR\Worker::reload(), see
 * examples/nextcloud/worker.php), whose new generation boots the code and apps on disk.
 */
final class InstalledApps
{
    /** Nanoseconds between two looks (hrtime: monotonic). */
    private const CHECK_EVERY = 1_000_000_000;

    /** The key under which Nextcloud's own installed version is compared. */
    private const CORE = 'version (config.php)';

    /** @var array<string, array<string, string>>|null What the boot loaded; null: not booted, nothing to compare. */
    private ?array $booted = null;
    private int $checkedAt = 0;
    private ?string $change = null;

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
        if ($this->booted === null || $this->change !== null) {
            return $this->change !== null;
        }
        $now = hrtime(true);
        if ($now - $this->checkedAt < self::CHECK_EVERY) {
            return false;
        }
        $this->checkedAt = $now;
        try {
            $this->change = self::difference($this->booted, self::current());
        } catch (\Throwable $e) {
            // The database is away: the next look tries again (the request already said so).
            error_log('RR\\Nextcloud: the installed apps could not be read: ' . $e->getMessage());
        }
        return $this->change !== null;
    }

    /** What changed since the boot (for the log), once changed() said so. */
    public function change(): ?string
    {
        return $this->change;
    }

    /**
     * The first value that differs, named, or null when none does.
     *
     * @param array<string, array<string, string>> $before
     * @param array<string, array<string, string>> $now
     */
    private static function difference(array $before, array $now): ?string
    {
        foreach ($before + $now as $key => $_) {
            $was = $before[$key] ?? [];
            $is = $now[$key] ?? [];
            if ($was === $is) {
                continue;
            }
            foreach ($was + $is as $app => $__) {
                if (($was[$app] ?? null) !== ($is[$app] ?? null)) {
                    return sprintf(
                        '%s of %s: %s -> %s',
                        $key,
                        $app,
                        var_export($was[$app] ?? null, true),
                        var_export($is[$app] ?? null, true),
                    );
                }
            }
        }
        return null;
    }

    /** @return array<string, array<string, string>> key => app => value (`enabled`: `yes`, `no` or a JSON list of groups) */
    private static function current(): array
    {
        $appConfig = Server::get(IAppConfig::class);
        $out = [];
        foreach (['enabled', 'installed_version'] as $key) {
            $values = $appConfig->searchValues($key, false, IAppConfig::VALUE_STRING);
            ksort($values);
            $out[$key] = $values;
        }
        $out[self::CORE] = ['nextcloud' => Server::get(IConfig::class)->getSystemValueString('version', '')];
        return $out;
    }
}
