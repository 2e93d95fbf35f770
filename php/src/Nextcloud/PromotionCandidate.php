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
        return self::keyOf($this->container, $this->id);
    }

    /** key() of the service `$id` of `$container`. */
    public static function keyOf(object $container, string $id): string
    {
        return spl_object_id($container) . "\0" . $id;
    }
}
