<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/** One property of a kept object as it was when kept: initialized or not, and its value. */
final class PropertyValue
{
    public function __construct(
        public readonly \ReflectionProperty $property,
        public readonly bool $initialized,
        public readonly mixed $value,
    ) {
    }

    /**
     * Every non-static, non-readonly property of an object, those of its parent classes
     * included, as they are now.
     *
     * @return list<self>
     */
    public static function allOf(object $object): array
    {
        $out = [];
        for ($class = new \ReflectionObject($object); $class !== false; $class = $class->getParentClass()) {
            foreach ($class->getProperties() as $property) {
                if ($property->isStatic() || $property->isReadOnly()
                    || $property->getDeclaringClass()->getName() !== $class->getName()) {
                    continue;
                }
                $initialized = $property->isInitialized($object);
                $out[] = new self($property, $initialized, $initialized ? $property->getValue($object) : null);
            }
        }
        return $out;
    }

    /** `Class::$name`, unique across the class chain. */
    public function name(): string
    {
        return $this->property->class . '::$' . $this->property->getName();
    }

    /** Puts the property of `$object` back to this, when it differs. */
    public function restore(object $object): void
    {
        if (!$this->initialized) {
            if ($this->property->isInitialized($object)) {
                Privates::unset($object, $this->property->getDeclaringClass()->getName(), $this->property->getName());
            }
            return;
        }
        if ($this->property->getValue($object) !== $this->value) {
            $this->property->setValue($object, $this->value);
        }
    }
}
