<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Static properties that php-fpm starts fresh for each request (queued scripts and styles, the
 * cached CSRF token of OCP\Util::callRegister(), incognito mode): their values after boot are
 * put back after each request. A class first loaded during a request gets its declared default.
 */
final class Statics
{
    /** @var array<class-string, array<string, mixed>> */
    private array $boot = [];

    /** @param array<class-string, list<string>> $properties */
    public function __construct(private readonly array $properties)
    {
    }

    public function snapshot(): void
    {
        foreach ($this->properties as $class => $names) {
            if (!class_exists($class, false)) {
                continue;
            }
            foreach ($names as $name) {
                $this->boot[$class][$name] = self::access($class, $name);
            }
        }
    }

    public function restore(): void
    {
        foreach ($this->properties as $class => $names) {
            if (!class_exists($class, false)) {
                continue;
            }
            $defaults = null;
            foreach ($names as $name) {
                if (array_key_exists($name, $this->boot[$class] ?? [])) {
                    $value = $this->boot[$class][$name];
                } else {
                    $defaults ??= (new \ReflectionClass($class))->getDefaultProperties();
                    $value = $defaults[$name] ?? null;
                }
                self::access($class, $name, [$value]);
            }
        }
    }

    /** Reads a static property, or writes `$set[0]` to it, whatever its visibility. */
    private static function access(string $class, string $name, ?array $set = null): mixed
    {
        return \Closure::bind(static function () use ($class, $name, $set): mixed {
            if (!property_exists($class, $name)) {
                return null;
            }
            if ($set !== null) {
                $class::$$name = $set[0];
            }
            return $class::$$name;
        }, null, $class)();
    }
}
