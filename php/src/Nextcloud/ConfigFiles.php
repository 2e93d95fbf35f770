<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\Config;
use OC\SystemConfig;
use OCP\Server;

/**
 * config.php and the `*.config.php` files beside it, read again when they change, as php-fpm
 * reads them at every request. A booted worker would otherwise serve the values it booted with:
 * a setting an admin writes while it runs (`occ twofactorauth:enforce`, `occ
 * config:system:set`, `occ maintenance:mode`) never reached it, and every login skipped an
 * enforced second factor. Before each request the files are looked at (a stat of the directory
 * and of each file); when anything differs from what the values in memory were read from,
 * OC\Config reads them again the way its constructor does. Containers leaves OC\Config's values
 * alone at the end of a request (they are the files' values, not the request's).
 */
final class ConfigFiles
{
    /** Files changed this recently (seconds) may change again within the same mtime second. */
    private const RECENT = 2;

    private ?Config $config = null;
    private string $dir = '';
    /** @var list<string> */
    private array $files = [];
    /** What the directory and the files were when the values were read; null: read again. */
    private ?string $readFrom = null;
    /** The directory's stat when $files was listed. */
    private string $listed = '';

    /** After the boot: reads the files once more, remembering what they were. */
    public function remember(): void
    {
        $config = Privates::get(Server::get(SystemConfig::class), SystemConfig::class, 'config');
        if (!$config instanceof Config) {
            return;
        }
        $this->config = $config;
        $this->dir = \OC::$configDir;
        clearstatcache();
        $this->read($this->state());
    }

    /** Before each request: the values of the files as they are now. */
    public function refresh(): void
    {
        if ($this->config === null) {
            return;
        }
        clearstatcache();
        $now = $this->state();
        if ($now === null || $now !== $this->readFrom) {
            $this->read($now);
        }
    }

    /** OC\Config reads the files again, as its constructor does; `$state` is what they were. */
    private function read(?string $state): void
    {
        Privates::in(Config::class, static function (Config $config): void {
            $config->cache = [];
            $config->envCache = [];
            $config->readData();
            $config->isReadOnly = $config->getValue('config_is_read_only', false);
        })($this->config);
        $this->readFrom = $state;
    }

    /**
     * The directory's and each file's inode, size, mtime and ctime; null when one changed in the
     * last RECENT seconds (a second write within the same second could keep all four).
     */
    private function state(): ?string
    {
        $dir = @stat($this->dir);
        $listed = self::key($dir);
        if ($listed !== $this->listed) {
            $extra = glob($this->dir . '*.config.php') ?: [];
            natsort($extra);
            $this->files = [$this->dir . 'config.php', ...$extra];
            $this->listed = $listed;
        }
        $stats = [$dir];
        foreach ($this->files as $file) {
            $stats[] = @stat($file);
        }
        $recent = time() - self::RECENT;
        $keys = [];
        foreach ($stats as $stat) {
            if ($stat !== false && max($stat['mtime'], $stat['ctime']) >= $recent) {
                return null;
            }
            $keys[] = self::key($stat);
        }
        return implode('|', $keys);
    }

    /** @param array<int|string, int>|false $stat what stat() gave */
    private static function key(array|false $stat): string
    {
        return $stat === false ? '-' : "{$stat['ino']}:{$stat['size']}:{$stat['mtime']}:{$stat['ctime']}";
    }
}
