<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Which entries a Pimple container has (`keys`) and which of them it has built (`frozen`), as
 * Pimple keeps them.
 */
final class PimpleState
{
    /**
     * @param array<string, true> $keys
     * @param array<string, true> $frozen
     */
    public function __construct(
        public readonly array $keys,
        public readonly array $frozen,
    ) {
    }

    public function equals(self $other): bool
    {
        return $this->keys === $other->keys && $this->frozen === $other->frozen;
    }

    /**
     * The entries added, or built, since `$before` (by service id).
     *
     * @return array<string, true>
     */
    public function builtSince(self $before): array
    {
        return array_diff_key($this->keys, $before->keys) + array_diff_key($this->frozen, $before->frozen);
    }
}
