<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\AppFramework\DependencyInjection\DIContainer;

/**
 * Container lookups without the exceptions Nextcloud builds on its way to an answer.
 *
 * An app's container asked for a server service (`OCP\IConfig`...), and the server asked for
 * an app's service, each throw and catch an exception before they find it: ~280 per PROPFIND,
 * each with a backtrace of ~36 frames, 5-10% of the request. rr's RR\reclass() makes the
 * server container a LookupServer and every app container a LookupAppContainer, in place
 * (the services built at boot and their closures keep holding the same objects); those find
 * the same service, or throw the same exception, without the detour.
 *
 * Only for the Nextcloud sources they were written against: the three methods they stand in
 * for must hash to a known value, else nothing changes.
 */
final class Lookups
{
    /**
     * sha256 of DIContainer::query(), DIContainer::queryNoFallback() and
     * ServerContainer::query() as source (whitespace collapsed), per known version.
     */
    private const KNOWN = [
        // Nextcloud 32.0.1
        'cd42f80e079e6be6564c7a80bea73232139d6580be81badd8164dd8988790970',
    ];

    /** Whether the sources match (checked once). */
    private static ?bool $known = null;

    /**
     * Turns the server container and every app container not yet turned (call after boot; an
     * app container made later keeps Nextcloud's lookups). Returns how many were turned.
     */
    public static function install(): int
    {
        if (!(self::$known ??= self::sourcesKnown())) {
            return 0;
        }
        $turned = 0;
        $server = \OC::$server;
        if ($server::class === \OC\Server::class) {
            \RR\reclass($server, LookupServer::class);
            $turned++;
        }
        $apps = Privates::get($server, \OC\ServerContainer::class, 'appContainers');
        foreach ($apps as $container) {
            if ($container::class === DIContainer::class) {
                \RR\reclass($container, LookupAppContainer::class);
                $turned++;
            }
        }
        return $turned;
    }

    /** The hash KNOWN lists, of the methods as installed. */
    public static function sourceHash(): string
    {
        $text = '';
        foreach ([[DIContainer::class, 'query'], [DIContainer::class, 'queryNoFallback'], [\OC\ServerContainer::class, 'query']] as [$class, $method]) {
            $m = new \ReflectionMethod($class, $method);
            $lines = file((string)$m->getFileName()) ?: [];
            $source = implode('', array_slice($lines, $m->getStartLine() - 1, $m->getEndLine() - $m->getStartLine() + 1));
            $text .= preg_replace('/\s+/', ' ', $source) . "\n";
        }
        return hash('sha256', $text);
    }

    private static function sourcesKnown(): bool
    {
        return in_array(self::sourceHash(), self::KNOWN, true);
    }
}
