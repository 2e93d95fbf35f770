<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\Security\SecureRandom;

/**
 * Nextcloud's SecureRandom with one random_bytes() call per string instead of one random_int()
 * per character: each is a getrandom() system call, and a request without a session cookie
 * asks for ~180 characters (the session passphrase, the CSRF token, the request id). Every
 * character is still drawn uniformly from the alphabet by the system's CSPRNG: a byte picks
 * the character at its value modulo the alphabet's length, and the bytes at or above the
 * largest multiple of that length are dropped, so no character is likelier than another.
 * Alphabets of more than 256 characters, an empty one and a length below 1 go to Nextcloud's
 * own code (the same answer, or the same exception). Holds nothing: installed in place of the
 * booted service by RR\reclass() (SpeedUps\RandomStrings).
 */
final class BatchedSecureRandom extends SecureRandom
{
    public function generate(
        int $length,
        string $characters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
    ): string {
        $count = \strlen($characters);
        if ($length <= 0 || $count === 0 || $count > 256) {
            return parent::generate($length, $characters);
        }
        $out = '';
        while (($missing = $length - \strlen($out)) > 0) {
            // A few more bytes than needed: at most 49% of them are dropped (an alphabet of 129).
            $out .= self::pick(random_bytes($missing + ($missing >> 1) + 8), $characters, $missing);
        }
        return $out;
    }

    /**
     * The characters $bytes pick from $characters (1 to 256 of them), in order, at most $max:
     * byte b picks $characters[b % count] when b is below the largest multiple of count that is
     * at most 256, and nothing otherwise.
     */
    public static function pick(string $bytes, string $characters, int $max): string
    {
        $count = \strlen($characters);
        $limit = 256 - 256 % $count;
        $out = '';
        $n = \strlen($bytes);
        for ($i = 0; $i < $n && $max > 0; $i++) {
            $byte = \ord($bytes[$i]);
            if ($byte < $limit) {
                $out .= $characters[$byte % $count];
                $max--;
            }
        }
        return $out;
    }
}
