<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Which processes share this one's APCu, Nextcloud's usual `memcache.local` (and its
 * `memcache.distributed` when none is configured). php-fpm's children share one APCu, mapped
 * by their master before it forks them. So do rr's workers forked from the template
 * (`http.pool.template: true`), and a single process has no sibling. A worker started as a
 * process of its own (`template: false`) has an APCu of its own: what another worker changes or
 * deletes there, this one neither sees nor forgets until the entry expires.
 */
enum ApcuScope
{
    /** Every process serving this install's requests through rr reads and writes the same APCu. */
    case Shared;
    /** This process's APCu is its own: the other workers have theirs. */
    case PerProcess;

    /**
     * This process, as rr started it: RR\role() and RR\forked(). Without rr loaded, or before an
     * RR\Worker was started, the answer is the cautious one, PerProcess.
     */
    public static function ofThisProcess(): self
    {
        if (!extension_loaded('rr')) {
            return self::PerProcess;
        }
        try {
            return self::of(\RR\role(), \RR\forked());
        } catch (\RR\Exception) {
            return self::PerProcess;
        }
    }

    /**
     * A process playing `$role` (RR\role()), `$forked` from the template or not (RR\forked()):
     * the template and the workers it forks share the template's APCu (a boot in the template
     * is inherited by them all), a single process serves alone, a re-executed worker has its
     * own. A master serves no Nextcloud request: PerProcess, the cautious answer.
     */
    public static function of(string $role, bool $forked): self
    {
        return match ($role) {
            'single', 'template' => self::Shared,
            'worker' => $forked ? self::Shared : self::PerProcess,
            'master' => self::PerProcess,
            default => throw new \InvalidArgumentException('RR\\Nextcloud\\ApcuScope: unknown role ' . var_export($role, true)),
        };
    }
}
