<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use RR\Nextcloud\SpeedUps\CompiledRoutes;
use RR\Nextcloud\SpeedUps\DerivedKeys;
use RR\Nextcloud\SpeedUps\DirectLookups;
use RR\Nextcloud\SpeedUps\KeptServices;
use RR\Nextcloud\SpeedUps\PreparedStatements;
use RR\Nextcloud\SpeedUps\RandomStrings;
use RR\Nextcloud\SpeedUps\SealedPasswords;
use RR\Nextcloud\SpeedUps\SpeedUp;

/**
 * How the Kernel serves Nextcloud: which speed-ups it installs, what it checks and logs, and
 * what the worker script does around it. The defaults are the production setting;
 * fromEnvironment() is the one place the `NEXTCLOUD_*` variables are read (docs/nextcloud.md).
 */
final class Options
{
    /** The on/off options fromEnvironment() reads, each from its variable (`0` or `1`). */
    private const SWITCHES = [
        'keepPure' => 'NEXTCLOUD_KEEP_PURE',
        'verifyKept' => 'NEXTCLOUD_VERIFY_KEPT',
        'sealPasswords' => 'NEXTCLOUD_SEAL_PASSWORDS',
        'directLookups' => 'NEXTCLOUD_DIRECT_LOOKUPS',
        'statementCache' => 'NEXTCLOUD_STATEMENT_CACHE',
        'batchedRandom' => 'NEXTCLOUD_BATCHED_RANDOM',
        'retireOnExit' => 'NEXTCLOUD_RETIRE_ON_EXIT',
    ];

    public function __construct(
        /** Load every enabled app and its routes at boot (what a logged-in index.php request does). */
        public readonly bool $loadAppsAtBoot = true,
        /**
         * Keep services whose construction cannot depend on the request (KeptServices); false
         * rebuilds every service built during a request in each one.
         */
        public readonly bool $keepPure = true,
        /** A file that gets one line per service looked at for keeping, or null. */
        public readonly ?string $promotionLog = null,
        /**
         * At the end of each request, build every kept service again and compare it with the kept
         * one, and decrypt every remembered app-password login again (for tests: costly).
         */
        public readonly bool $verifyKept = false,
        /** Remember the login password an app password decrypts, sealed (SealedPasswords). */
        public readonly bool $sealPasswords = true,
        /** Find services without the exceptions Nextcloud's containers throw on the way (DirectLookups). */
        public readonly bool $directLookups = true,
        /** Keep prepared statements across requests (PreparedStatements, SQLite only). */
        public readonly bool $statementCache = true,
        /** Random strings from one random_bytes() call each (RandomStrings). */
        public readonly bool $batchedRandom = true,
        /** A file for the average time of each phase of the request cycle (Phases), or null. */
        public readonly ?string $phasesFile = null,
        /** Requests per line of $phasesFile. */
        public readonly int $phasesEvery = 100,
        /**
         * For the worker script: boot before the first request (true), at it (false), or as the
         * process's role decides (null: every process that serves before, a pool master never).
         */
        public readonly ?bool $eagerBoot = null,
        /** For the worker script: replace a worker after a request that ended in exit(). */
        public readonly bool $retireOnExit = true,
    ) {
        if ($promotionLog === '') {
            throw new \InvalidArgumentException('RR\\Nextcloud\\Options: promotionLog is empty (null turns it off)');
        }
        if ($phasesFile === '') {
            throw new \InvalidArgumentException('RR\\Nextcloud\\Options: phasesFile is empty (null turns it off)');
        }
        if ($phasesEvery < 1) {
            throw new \InvalidArgumentException("RR\\Nextcloud\\Options: phasesEvery must be at least 1, got $phasesEvery");
        }
    }

    /**
     * The options the `NEXTCLOUD_*` variables set (unset or empty: the default):
     * NEXTCLOUD_KEEP_PURE, _SEAL_PASSWORDS, _DIRECT_LOOKUPS, _STATEMENT_CACHE, _BATCHED_RANDOM,
     * _RETIRE_ON_EXIT (`0` turns one off), NEXTCLOUD_VERIFY_KEPT (`1` turns it on),
     * NEXTCLOUD_EAGER_BOOT (`1` or `0`), NEXTCLOUD_PROMOTION_LOG and NEXTCLOUD_PHASES (a file),
     * NEXTCLOUD_PHASES_EVERY (a number of requests). Any other value is refused with the variable's name.
     *
     * @param array<string, string>|null $environment the variables, else getenv()
     */
    public static function fromEnvironment(?array $environment = null): self
    {
        $environment ??= getenv();
        $value = static fn (string $name): string => (string)($environment[$name] ?? '');
        $flags = [];
        foreach (self::SWITCHES as $option => $name) {
            $flags[$option] = match ($value($name)) {
                '' => null,
                '0' => false,
                '1' => true,
                default => throw self::invalid($name, $value($name), '0 or 1'),
            };
        }
        $every = $value('NEXTCLOUD_PHASES_EVERY');
        if ($every !== '' && preg_match('/^[1-9][0-9]{0,8}$/', $every) !== 1) {
            throw self::invalid('NEXTCLOUD_PHASES_EVERY', $every, 'a whole number of requests (at least 1)');
        }
        $eager = $value('NEXTCLOUD_EAGER_BOOT');
        return new self(
            keepPure: $flags['keepPure'] ?? true,
            promotionLog: $value('NEXTCLOUD_PROMOTION_LOG') !== '' ? $value('NEXTCLOUD_PROMOTION_LOG') : null,
            verifyKept: $flags['verifyKept'] ?? false,
            sealPasswords: $flags['sealPasswords'] ?? true,
            directLookups: $flags['directLookups'] ?? true,
            statementCache: $flags['statementCache'] ?? true,
            batchedRandom: $flags['batchedRandom'] ?? true,
            phasesFile: $value('NEXTCLOUD_PHASES') !== '' ? $value('NEXTCLOUD_PHASES') : null,
            phasesEvery: $every !== '' ? (int)$every : 100,
            eagerBoot: match ($eager) {
                '' => null,
                '0' => false,
                '1' => true,
                default => throw self::invalid('NEXTCLOUD_EAGER_BOOT', $eager, '0 or 1'),
            },
            retireOnExit: $flags['retireOnExit'] ?? true,
        );
    }

    /** The phase timer these options ask for, or null. */
    public function phases(): ?Phases
    {
        return $this->phasesFile === null ? null : new Phases($this->phasesFile, $this->phasesEvery);
    }

    /**
     * The speed-ups these options turn on, in the order they are installed at boot and run at
     * the end of each request.
     *
     * @return list<SpeedUp>
     */
    public function speedUps(Containers $containers): array
    {
        $speedUps = [new CompiledRoutes(), new DerivedKeys()];
        if ($this->sealPasswords) {
            $speedUps[] = new SealedPasswords($this->verifyKept);
        }
        if ($this->directLookups) {
            $speedUps[] = new DirectLookups();
        }
        if ($this->statementCache) {
            $speedUps[] = new PreparedStatements();
        }
        if ($this->batchedRandom) {
            $speedUps[] = new RandomStrings();
        }
        if ($this->keepPure) {
            $speedUps[] = new KeptServices($containers, $this->promotionLog);
        }
        return $speedUps;
    }

    private static function invalid(string $name, string $value, string $expected): \InvalidArgumentException
    {
        return new \InvalidArgumentException("$name must be $expected, got " . var_export($value, true));
    }
}
