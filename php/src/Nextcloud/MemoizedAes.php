<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * phpseclib's AES for Nextcloud's Crypto service (OC\Security\Crypto, one per worker, built at
 * boot), deriving each password's key once per request.
 *
 * Crypto::encrypt() and decrypt() call `setPassword()` every time, and phpseclib derives the
 * key with PBKDF2 (1000 rounds of HMAC-SHA1, about 0.3 ms). One request often uses the same
 * password several times: a new session is encrypted when initSession() closes it, decrypted
 * when the CSRF token reopens it and encrypted again when it closes: three derivations of one
 * key. Here a `setPassword()` with a password, salt and key length seen before in the request
 * sets the key derived then, which is what PBKDF2 would compute again (it is a function of
 * those three). SpeedUps\DerivedKeys calls forget() at the end of every request, so no key
 * outlives the request that derived it, except those of passwords given to keep(): the one
 * Crypto derives from the instance secret, which every app-password login uses (the login
 * credentials store) and which the worker holds anyway (config.php). A key is derived by rr's
 * native RR\pbkdf2_sha1().
 */
final class MemoizedAes extends \phpseclib\Crypt\AES
{
    /** Passwords remembered per request at most (a request decrypting many values with many passwords derives the rest each time). */
    private const MAX_KEYS = 64;

    /** @var array<string, string> derived key by key length, salt and password */
    private array $keys = [];

    /** @var array<string, true> passwords whose keys forget() leaves (keep()) */
    private array $lasting = [];

    /** @var array<string, true> the ids in $keys of those passwords */
    private array $lastingIds = [];

    /**
     * What phpseclib's engine choice (_setEngine()) leaves in the properties it sets, by what it
     * depends on. It calls openssl_get_cipher_methods() (a list of ~200 names built anew) on
     * every setKey(), setIV() and setPassword(): ~0.5 ms of a PROPFIND with an app password.
     * The answer depends only on the cipher's shape and on what this PHP has loaded, so it is
     * kept for the worker's life (it holds no key, only engine and cipher names).
     *
     * @var array<string, array<string, mixed>>
     */
    private array $engines = [];

    /** The properties _setEngine() and the isValidEngine() calls it makes may set. */
    private const ENGINE_PROPERTIES = [
        'engine', 'cipher_name_openssl', 'cipher_name_openssl_ecb', 'cipher_name_mcrypt',
        'openssl_emulate_ctr', 'openssl_options',
    ];

    /**
     * phpseclib's setPassword(); the one-argument form (PBKDF2 with phpseclib's defaults, the
     * form Crypto uses) is remembered, any other goes to phpseclib as it is.
     *
     * @param string $password
     * @param string $method
     * @return bool
     */
    public function setPassword($password, $method = 'pbkdf2')
    {
        if (func_num_args() !== 1 || !is_string($password)) {
            return parent::setPassword(...func_get_args());
        }
        $id = $this->key_length . "\0" . $this->password_default_salt . "\0" . $password;
        if (isset($this->keys[$id])) {
            $this->setKey($this->keys[$id]);
            return true;
        }
        // phpseclib's own path for this form, with rr's native PBKDF2 (the same bytes as
        // hash_pbkdf2('sha1', ...), ~3.5x faster): sha1, its default salt, 1000 rounds, a key of
        // the cipher's key length, then setKey().
        $this->setKey(\RR\pbkdf2_sha1($password, $this->password_default_salt, 1000, $this->key_length));
        if (count($this->keys) < self::MAX_KEYS) {
            // setKey() stored the derived key as it is.
            $this->keys[$id] = $this->key;
            if (isset($this->lasting[$password])) {
                $this->lastingIds[$id] = true;
            }
        }
        return true;
    }

    /**
     * phpseclib's _setEngine(), answered from the first call with the same inputs: the preferred
     * engine, key length, mode, block size and continuous-buffer flag. With an mcrypt resource
     * open (never on PHP 8, which has no mcrypt) it is phpseclib's own.
     */
    // phpcs:ignore PSR1.Methods.CamelCapsMethodName -- phpseclib's name
    public function _setEngine()
    {
        if ($this->enmcrypt) {
            parent::_setEngine();
            return;
        }
        $id = $this->preferredEngine . "\0" . $this->key_length . "\0" . $this->mode . "\0"
            . $this->block_size . "\0" . (int)$this->continuousBuffer;
        if (isset($this->engines[$id])) {
            foreach ($this->engines[$id] as $name => $value) {
                $this->$name = $value;
            }
            $this->changed = true;
            return;
        }
        parent::_setEngine();
        $state = [];
        foreach (self::ENGINE_PROPERTIES as $name) {
            $state[$name] = $this->$name;
        }
        $this->engines[$id] = $state;
    }

    /** How many engine choices are remembered (one per cipher shape used). */
    public function enginesRemembered(): int
    {
        return count($this->engines);
    }

    /**
     * Keeps the key derived from this password across requests: forget() leaves it. Only for a
     * password the worker holds for its whole life anyway (DerivedKeys: what Crypto derives
     * from the instance secret), never one of a user or a session.
     */
    public function keep(string $password): void
    {
        $this->lasting[$password] = true;
    }

    /** Forgets every key derived so far except those of keep()'s passwords (the end of a request). */
    public function forget(): void
    {
        $this->keys = array_intersect_key($this->keys, $this->lastingIds);
    }

    /** How many derived keys are remembered now. */
    public function remembered(): int
    {
        return count($this->keys);
    }
}
