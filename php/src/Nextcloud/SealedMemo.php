<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Results of a slow pure function of a secret, remembered across requests without holding them
 * in the clear: each result is sealed (AES-256-GCM) under a key derived from the secret and the
 * other inputs, and filed under an id derived the same way (HMAC-SHA256, separate labels).
 *
 * The secret is one only a client presents (an app password): a later request finds the result
 * again only by presenting the same secret with the same inputs, and the worker's memory holds
 * ids, nonces and ciphertext, never a result, a key or the secret. Entries expire after `ttl`
 * seconds; past `capacity` the oldest goes first.
 */
final class SealedMemo
{
    private const CIPHER = 'aes-256-gcm';

    /** @var array<string, SealedEntry> by id, oldest first */
    private array $entries = [];

    /** @var \Closure(): int */
    private \Closure $clock;

    /**
     * @param int $capacity entries kept at most (>= 1)
     * @param int $ttl seconds an entry is kept (>= 1)
     * @param (\Closure(): int)|null $clock the time in seconds (tests), else time()
     */
    public function __construct(
        private readonly int $capacity = 256,
        private readonly int $ttl = 600,
        ?\Closure $clock = null,
    ) {
        if ($capacity < 1) {
            throw new \ValueError("RR\\Nextcloud\\SealedMemo: capacity must be at least 1, got $capacity");
        }
        if ($ttl < 1) {
            throw new \ValueError("RR\\Nextcloud\\SealedMemo: ttl must be at least 1 second, got $ttl");
        }
        $this->clock = $clock ?? static fn (): int => time();
    }

    /** The result remembered for this secret and these inputs, or null. */
    public function get(string $secret, string $inputs): ?string
    {
        $id = self::derive('id', $secret, $inputs);
        $entry = $this->entries[$id] ?? null;
        if ($entry === null) {
            return null;
        }
        if ($entry->expires <= ($this->clock)()) {
            unset($this->entries[$id]);
            return null;
        }
        $value = openssl_decrypt(
            $entry->ciphertext,
            self::CIPHER,
            self::derive('key', $secret, $inputs),
            OPENSSL_RAW_DATA,
            $entry->nonce,
            $entry->tag,
        );
        if ($value === false) {
            // Cannot happen for an entry put() made from the same secret; never serve a guess.
            unset($this->entries[$id]);
            return null;
        }
        return $value;
    }

    /** Remembers `$value` for this secret and these inputs. */
    public function put(string $secret, string $inputs, string $value): void
    {
        $id = self::derive('id', $secret, $inputs);
        unset($this->entries[$id]);
        $now = ($this->clock)();
        foreach ($this->entries as $old => $entry) {
            if ($entry->expires > $now && count($this->entries) < $this->capacity) {
                break;
            }
            // Expired, or the oldest while full (entries are in the order they were put).
            unset($this->entries[$old]);
        }
        $nonce = random_bytes(12);
        $tag = '';
        $ciphertext = openssl_encrypt($value, self::CIPHER, self::derive('key', $secret, $inputs), OPENSSL_RAW_DATA, $nonce, $tag);
        if ($ciphertext === false) {
            return;
        }
        $this->entries[$id] = new SealedEntry($now + $this->ttl, $nonce, $ciphertext, $tag);
    }

    /** How many entries are held (expired ones included until looked up or pushed out). */
    public function count(): int
    {
        return count($this->entries);
    }

    public function clear(): void
    {
        $this->entries = [];
    }

    private static function derive(string $label, string $secret, string $inputs): string
    {
        return hash_hmac('sha256', $label . "\0" . $inputs, $secret, true);
    }
}
