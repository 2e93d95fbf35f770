<?php

declare(strict_types=1);

namespace RR\Nextcloud\SpeedUps;

use OC\Security\SecureRandom;
use OCP\Security\ISecureRandom;
use OCP\Server;
use RR\Nextcloud\BatchedSecureRandom;

/**
 * Random strings (session passphrase, CSRF token, request id) from one random_bytes() call
 * each instead of a random_int() per character (BatchedSecureRandom). The booted service is
 * turned into a BatchedSecureRandom in place (RR\reclass()), so every service holding it uses it;
 * only when it is exactly Nextcloud's SecureRandom and generate() is the code this was written
 * against (its source hashes to a known value), else nothing changes.
 */
final class RandomStrings implements SpeedUp
{
    /** sha256 of SecureRandom::generate() as source (whitespace collapsed), per known version. */
    private const KNOWN = [
        // Nextcloud 32.0.1
        'dc020f980c0b0f937578a1785d338d2b46e1cc3519915cde148f5e6263c778a2',
    ];

    public function install(): void
    {
        $random = Server::get(ISecureRandom::class);
        if ($random::class === SecureRandom::class && in_array(self::sourceHash(), self::KNOWN, true)) {
            \RR\reclass($random, BatchedSecureRandom::class);
        }
    }

    public function endRequest(): void
    {
    }

    /** The hash KNOWN lists, of SecureRandom::generate() as installed. */
    public static function sourceHash(): string
    {
        $method = new \ReflectionMethod(SecureRandom::class, 'generate');
        $lines = file((string)$method->getFileName()) ?: [];
        $source = implode('', array_slice($lines, $method->getStartLine() - 1, $method->getEndLine() - $method->getStartLine() + 1));
        return hash('sha256', (string)preg_replace('/\s+/', ' ', $source));
    }
}
