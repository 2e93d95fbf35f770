<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/** One result SealedMemo holds: AES-256-GCM ciphertext with its nonce and tag, and its expiry. */
final class SealedEntry
{
    public function __construct(
        /** Unix time from which it is no longer served. */
        public readonly int $expires,
        public readonly string $nonce,
        public readonly string $ciphertext,
        public readonly string $tag,
    ) {
    }
}
