<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * The one way the runtime reaches Nextcloud's private and protected state: a closure run in the
 * scope of the class that declares the member. The class is always named, because a private
 * member is only visible from its declaring class (an object may be of a subclass: rr reclasses
 * the server container).
 *
 * `in()` gives a closure bound once, for code that runs on every request and touches many
 * members at a time; the others are one-off reads and writes.
 */
final class Privates
{
    /**
     * `$code` (a static closure taking the objects it works on as arguments) bound to the scope
     * of `$class`.
     *
     * @template T of \Closure
     * @param class-string $class
     * @param T $code
     * @return T
     */
    public static function in(string $class, \Closure $code): \Closure
    {
        $bound = \Closure::bind($code, null, $class);
        if ($bound === null) {
            throw new \LogicException("RR\\Nextcloud\\Privates: cannot bind a closure to the scope of {$class}");
        }
        return $bound;
    }

    /** @param class-string $class the class declaring `$property` */
    public static function get(object $object, string $class, string $property): mixed
    {
        return self::in($class, static fn (object $o): mixed => $o->$property)($object);
    }

    /** @param class-string $class the class declaring `$property` */
    public static function set(object $object, string $class, string $property, mixed $value): void
    {
        self::in($class, static function (object $o) use ($property, $value): void {
            $o->$property = $value;
        })($object);
    }

    /** Sets `$property` to `$value` and returns what it held. */
    public static function swap(object $object, string $class, string $property, mixed $value): mixed
    {
        return self::in($class, static function (object $o) use ($property, $value): mixed {
            $old = $o->$property;
            $o->$property = $value;
            return $old;
        })($object);
    }

    /** Makes `$property` uninitialized again (a typed property without default). */
    public static function unset(object $object, string $class, string $property): void
    {
        self::in($class, static function (object $o) use ($property): void {
            unset($o->$property);
        })($object);
    }

    /** A static property of `$class` (null when it declares none of that name). */
    public static function getStatic(string $class, string $property): mixed
    {
        return self::in($class, static fn (): mixed => property_exists($class, $property) ? $class::$$property : null)();
    }

    public static function setStatic(string $class, string $property, mixed $value): void
    {
        self::in($class, static function () use ($class, $property, $value): void {
            $class::$$property = $value;
        })();
    }

    /** Sets a static property of `$class` to `$value` and returns what it held. */
    public static function swapStatic(string $class, string $property, mixed $value): mixed
    {
        return self::in($class, static function () use ($class, $property, $value): mixed {
            $old = $class::$$property;
            $class::$$property = $value;
            return $old;
        })();
    }

    /** Calls a private static method of `$class`. */
    public static function callStatic(string $class, string $method, mixed ...$args): mixed
    {
        return self::in($class, static fn (): mixed => $class::$method(...$args))();
    }
}
