<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Whether a service may be kept across requests (PureConstructor, Containers::promote()), and
 * if not, why (for the promotion log).
 */
final class Verdict
{
    private function __construct(
        /** Why not; null when accepted. */
        public readonly ?string $refusal,
    ) {
    }

    public static function accepted(): self
    {
        return new self(null);
    }

    public static function refused(string $why): self
    {
        return new self($why);
    }

    public function isAccepted(): bool
    {
        return $this->refusal === null;
    }
}
