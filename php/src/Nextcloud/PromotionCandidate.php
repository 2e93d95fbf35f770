<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/** A service a request built by reflection that was not there at boot: promote() looks at it once. */
final class PromotionCandidate
{
    /** @param class-string $class */
    public function __construct(
        public readonly object $container,
        public readonly string $id,
        public readonly string $class,
    ) {
    }

    /** The key under which the decision on it is remembered. */
    public function key(): string
    {
        return spl_object_id($this->container) . "\0" . $this->id;
    }
}
