<?php

declare(strict_types=1);

namespace RR\Nextcloud\SpeedUps;

use OC\Security\Crypto;
use OCP\Security\ICrypto;
use OCP\Server;
use RR\Nextcloud\MemoizedAes;
use RR\Nextcloud\Privates;

/**
 * Gives Nextcloud's Crypto service (built at boot, shared by every service) an AES that derives
 * each password's key once per request (MemoizedAes): a request that starts a session derives
 * the same key three times. The key of the instance secret is kept for the worker's life: every
 * app-password login encrypts the login credentials with it. Left as it is when the service or
 * its cipher is not exactly the class this was written for (another Nextcloud or phpseclib).
 */
final class DerivedKeys implements SpeedUp
{
    private ?MemoizedAes $cipher = null;

    public function install(): void
    {
        $crypto = Server::get(ICrypto::class);
        if ($crypto::class !== Crypto::class || !class_exists(\phpseclib\Crypt\AES::class)) {
            return;
        }
        $this->cipher = Privates::in(Crypto::class, static function (Crypto $crypto): ?MemoizedAes {
            if (!isset($crypto->cipher) || $crypto->cipher::class !== \phpseclib\Crypt\AES::class) {
                return null;
            }
            // Crypto's constructor does `new AES()`; encrypt() and decrypt() set key and IV first.
            $cipher = new MemoizedAes();
            // encrypt() and decrypt() without a password use the instance secret, through the
            // same derivation as a given one (Crypto::encrypt(), Nextcloud 32).
            $secret = $crypto->config->getSystemValueString('secret');
            if ($secret !== '') {
                $cipher->keep(substr(hash_hkdf('sha512', $secret), 0, 32));
            }
            return $crypto->cipher = $cipher;
        })($crypto);
    }

    /** Every encryption of the request (the session's last one included) is done. */
    public function endRequest(): void
    {
        $this->cipher?->forget();
    }
}
