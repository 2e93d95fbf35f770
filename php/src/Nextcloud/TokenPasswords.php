<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\Authentication\Token\PublicKeyToken;
use OC\Authentication\Token\PublicKeyTokenProvider;
use OCP\Authentication\Token\IToken as OCPIToken;

/**
 * Nextcloud's token provider, with the login password of an app password (or session token)
 * remembered sealed across requests (SealedMemo).
 *
 * Every request that logs in with an app password makes Nextcloud decrypt the user's login
 * password from the token's row for the login hooks: PBKDF2 and AES for the token's private key,
 * then an RSA-2048 private decryption (~0.9 ms of a PROPFIND, 13%). The result is a function of
 * the token the client presents, the two encrypted values in the row and the instance secret.
 * Here it is sealed under a key derived from all four, so only a request presenting the same
 * token for the same row finds it again; a changed row (new password, new key) or secret is
 * another entry, and a failing decryption is never remembered (it runs, and fails, as before).
 *
 * SpeedUps\SealedPasswords installs it (an alias of PublicKeyTokenProvider in the server
 * container) only when the provider's getPassword() has the shape this class overrides.
 */
final class TokenPasswords extends PublicKeyTokenProvider
{
    /** The memo, set by SealedPasswords for the worker's life; null: decrypt every time. */
    public static ?SealedMemo $memo = null;
    /** Tests (NEXTCLOUD_VERIFY_KEPT): decrypt on every hit too and refuse a difference. */
    public static bool $verify = false;
    /** How many getPassword() calls the memo answered in this process. */
    public static int $hits = 0;

    public function getPassword(OCPIToken $savedToken, string $tokenId): string
    {
        $memo = self::$memo;
        if ($memo === null || !$savedToken instanceof PublicKeyToken || $savedToken->getPassword() === null) {
            return parent::getPassword($savedToken, $tokenId);
        }
        $secret = $tokenId . "\0" . \OCP\Server::get(\OCP\IConfig::class)->getSystemValueString('secret');
        $inputs = $savedToken->getId() . "\0" . $savedToken->getPrivateKey() . "\0" . $savedToken->getPassword();
        $known = $memo->get($secret, $inputs);
        if ($known !== null) {
            self::$hits++;
            if (!self::$verify) {
                return $known;
            }
        }
        $password = parent::getPassword($savedToken, $tokenId);
        if ($known !== null && !hash_equals($password, $known)) {
            throw new \LogicException('RR\\Nextcloud\\TokenPasswords: the remembered password of token '
                . $savedToken->getId() . ' differs from a fresh decryption');
        }
        $memo->put($secret, $inputs, $password);
        return $password;
    }
}
