<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/** An object kept across requests, with the properties it gets back after each one. */
final class KeptObject
{
    /** @param list<PropertyValue> $properties */
    public function __construct(
        public readonly object $object,
        public readonly array $properties,
    ) {
    }

    /** Puts back each property that differs (one level: the objects it holds stay as they are). */
    public function restore(): void
    {
        foreach ($this->properties as $property) {
            $property->restore($this->object);
        }
    }
}
