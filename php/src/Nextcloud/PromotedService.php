<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * A service promote() kept, with how it is built (for verify()): by the container's reflection,
 * or by its factory, and its properties as built.
 */
final class PromotedService
{
    /** @param array<string, PropertyValue> $properties by PropertyValue::name() */
    public function __construct(
        public readonly object $container,
        /** The factory it was registered with, or null when built by reflection. */
        public readonly ?\Closure $factory,
        /** The Pimple container the factory is called with. */
        public readonly object $pimple,
        public readonly object $service,
        public readonly array $properties = [],
    ) {
    }

    /** @param list<PropertyValue> $properties */
    public function withProperties(array $properties): self
    {
        $byName = [];
        foreach ($properties as $property) {
            $byName[$property->name()] = $property;
        }
        return new self($this->container, $this->factory, $this->pimple, $this->service, $byName);
    }

    /** A fresh build, the way the container built this one. */
    public function buildAgain(): object
    {
        return $this->factory === null
            ? $this->container->resolve($this->service::class)
            : ($this->factory)($this->pimple);
    }
}
