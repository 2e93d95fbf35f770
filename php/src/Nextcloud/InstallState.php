<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\SystemConfig;
use OCP\IAppConfig;
use OCP\Server;

/**
 * What a worker booted with and cannot take in while it runs: the apps enabled (and the groups
 * each is restricted to), each app's installed version (the app config's `enabled` and
 * `installed_version` of each app), and the values of config.php (and the `*.config.php`
 * files beside it), Nextcloud's own installed `version` among them.
 *
 * A booted worker loaded the apps, their routes and their classes once, and built services
 * from config.php's values once. An app an admin disables while it runs (`occ app:disable`,
 * the Apps page) would stay served until the pool reloads, where php-fpm stops serving it
 * within seconds (its local cache of the app config is kept 3 s). An upgrade (`occ upgrade`,
 * `occ app:update`, the updater) replaces code and migrates the database: a worker still
 * running the code of its boot against the new schema, loading the new files it had not loaded
 * yet beside the old classes, is what php-fpm never runs (it reads changed files within
 * opcache.revalidate_freq). A new database password, host or cache server in config.php would
 * reach only the values ConfigFiles reads again before each request, not the connection and
 * cache objects built at boot.
 *
 * After a request the values are compared with the boot's, at most once per CHECK_EVERY
 * (loading the app config costs a status.php request about 13 microseconds); a difference
 * makes the worker script ask the pool for a reload (RR\Worker::reload(), see
 * examples/nextcloud/worker.php), whose new generation boots what is installed now.
 */
final class InstallState
{
    /** Nanoseconds between two looks (hrtime: monotonic). */
    private const CHECK_EVERY = 1_000_000_000;

    /** The app config keys compared, of every app. */
    private const APP_KEYS = ['enabled', 'installed_version'];

    /** @var array{apps: array<string, array<string, string>>, system: array<string, mixed>}|null What the boot loaded; null: not booted, nothing to compare. */
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
     * After a request, before its state is reset: what differs from the boot's values, or
     * null. An app config value is named with its old and new value, config.php's keys by name
     * only (never their values: a password may be one). Looked at once per CHECK_EVERY at
     * most; once set, stays set.
     */
    public function change(): ?string
    {
        if ($this->booted === null || $this->change !== null) {
            return $this->change;
        }
        $now = hrtime(true);
        if ($now - $this->checkedAt < self::CHECK_EVERY) {
            return null;
        }
        $this->checkedAt = $now;
        try {
            $this->change = self::difference($this->booted, self::current());
        } catch (\Throwable $e) {
            // The database is away: the next look tries again (the request already said so).
            error_log('RR\\Nextcloud: the installed apps could not be read: ' . $e->getMessage());
        }
        return $this->change;
    }

    /**
     * @param array{apps: array<string, array<string, string>>, system: array<string, mixed>} $before
     * @param array{apps: array<string, array<string, string>>, system: array<string, mixed>} $now
     */
    private static function difference(array $before, array $now): ?string
    {
        foreach (self::APP_KEYS as $key) {
            $was = $before['apps'][$key];
            $is = $now['apps'][$key];
            if ($was === $is) {
                continue;
            }
            foreach ($was + $is as $app => $_) {
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
        if ($before['system'] === $now['system']) {
            return null;
        }
        $keys = [];
        foreach ($before['system'] + $now['system'] as $key => $_) {
            if (!array_key_exists($key, $before['system']) || !array_key_exists($key, $now['system'])
                || $before['system'][$key] !== $now['system'][$key]) {
                $keys[] = $key;
            }
        }
        return 'config.php: ' . implode(', ', $keys);
    }

    /** @return array{apps: array<string, array<string, string>>, system: array<string, mixed>} */
    private static function current(): array
    {
        $appConfig = Server::get(IAppConfig::class);
        $apps = [];
        foreach (self::APP_KEYS as $key) {
            $values = $appConfig->searchValues($key, false, IAppConfig::VALUE_STRING);
            ksort($values);
            $apps[$key] = $values;
        }
        $config = Server::get(SystemConfig::class);
        $system = [];
        foreach ($config->getKeys() as $key) {
            $system[$key] = $config->getValue($key);
        }
        ksort($system);
        return ['apps' => $apps, 'system' => $system];
    }
}
