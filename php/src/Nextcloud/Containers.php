<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Puts Nextcloud's dependency-injection containers (the server's and every app's) back to
 * their state after boot, after each request.
 *
 * Services built during a request may hold that request's user: SecurityMiddleware is built
 * with "logged in" as a bool, controllers and app services get `$userId` (a shared service
 * read from the session), the session CryptoWrapper keeps the request's passphrase cookie.
 * Under php-fpm they die with the request; here every service instantiated during the request
 * is forgotten, so the next request builds its own. Services built at boot stay shared.
 *
 * Containers are Pimple containers wrapped by OC\AppFramework\Utility\SimpleContainer; the
 * state is Pimple's own: `values` (service closures, or the instance once built), `raw` and
 * `frozen` (which were built), `keys`.
 */
final class Containers
{
    /** @var \WeakMap<object, array{keys: array<string, true>, frozen: array<string, true>}> */
    private \WeakMap $boot;

    /**
     * The services built at boot, each with its own properties as they were after boot, and
     * its `(array)` cast after boot (every initialized property, by mangled name, references
     * dereferenced; null for internal classes): while the cast is identical (`===`, objects by identity) nothing changed
     * and the property-by-property restore has nothing to do.
     *
     * @var list<array{object, list<array{\ReflectionProperty, bool, mixed}>, array<string, mixed>|null}>
     */
    private array $services = [];

    /** @var array<class-string, \Closure(object, ?array): void> per Pimple class, bound to it */
    private array $reverters = [];

    /** Reads SimpleContainer's private Pimple container (bound once Nextcloud is loaded). */
    private ?\Closure $pimple = null;

    public function __construct()
    {
        $this->boot = new \WeakMap();
    }

    /** Remembers what every container holds now (call once, after boot). */
    public function snapshot(): void
    {
        $this->pimple = \Closure::bind(
            static fn (object $container): object => $container->container,
            null,
            \OC\AppFramework\Utility\SimpleContainer::class,
        );
        $seen = new \SplObjectStorage();
        foreach ($this->containers() as $container) {
            $pimple = ($this->pimple)($container);
            $this->boot[$container] = $this->state($pimple);
            foreach ($this->built($pimple) as $service) {
                if (!$seen->contains($service) && !self::keepsState($service)) {
                    $seen->attach($service);
                    $properties = self::properties($service);
                    $this->services[] = [$service, $properties, self::cast($service)];
                    // In-memory caches a service holds (Root's user folders, ...) are emptied too.
                    foreach ($properties as [, , $value]) {
                        if (self::isMemoryCache($value) && !$seen->contains($value)) {
                            $seen->attach($value);
                            $this->services[] = [$value, self::properties($value), self::cast($value)];
                        }
                    }
                }
            }
        }
    }

    /**
     * Services that must keep what they hold across requests: the containers themselves, and
     * the database connection (its driver connection and transaction level).
     */
    private static function keepsState(object $service): bool
    {
        return $service instanceof \OC\AppFramework\Utility\SimpleContainer
            || $service instanceof \Pimple\Container
            || $service instanceof \Doctrine\DBAL\Connection
            || $service instanceof \OC\DB\ConnectionAdapter
            || $service instanceof \Closure;
    }

    /**
     * A per-request cache object: under php-fpm it dies with the request. The public share
     * endpoint, for one, leaves the owner's user folder wrapped in the share's permissions in
     * OC\Files\Node\Root's user folder cache.
     */
    private static function isMemoryCache(mixed $value): bool
    {
        return $value instanceof \OCP\Cache\CappedMemoryCache
            || $value instanceof \OC\Memcache\ArrayCache;
    }

    /** @return list<array{\ReflectionProperty, bool, mixed}> property, initialized, value */
    private static function properties(object $service): array
    {
        $out = [];
        for ($class = new \ReflectionObject($service); $class !== false; $class = $class->getParentClass()) {
            foreach ($class->getProperties() as $property) {
                if ($property->isStatic() || $property->isReadOnly()
                    || $property->getDeclaringClass()->getName() !== $class->getName()) {
                    continue;
                }
                $initialized = $property->isInitialized($service);
                $out[] = [$property, $initialized, $initialized ? $property->getValue($service) : null];
            }
        }
        return $out;
    }

    /**
     * Every initialized property of an object by mangled name (what `(array)` gives), with
     * references replaced by their values, as ReflectionProperty::getValue() reads them; null
     * for an object of an internal class or one derived from it.
     *
     * @return array<string, mixed>|null
     */
    private static function cast(object $object): ?array
    {
        for ($class = new \ReflectionObject($object); $class !== false; $class = $class->getParentClass()) {
            if ($class->isInternal()) {
                // An internal class may give `(array)` something else than its properties
                // (ArrayObject gives its storage): no shortcut, always compare one by one.
                return null;
            }
        }
        $out = [];
        foreach ((array)$object as $name => $value) {
            $out[$name] = $value;
        }
        return $out;
    }

    /** Every boot service gets its own properties back (one level: objects they hold stay). */
    private function restoreServices(): void
    {
        foreach ($this->services as [$service, $properties, $cast]) {
            // Identical cast: every property initialized at boot holds the identical value and
            // none other is initialized, so the loop below would change nothing.
            if ($cast !== null && (array)$service === $cast) {
                continue;
            }
            foreach ($properties as [$property, $initialized, $value]) {
                if (!$initialized) {
                    if ($property->isInitialized($service)) {
                        \Closure::bind(function () use ($property): void {
                            unset($this->{$property->getName()});
                        }, $service, $property->getDeclaringClass()->getName())();
                    }
                    continue;
                }
                if ($property->getValue($service) !== $value) {
                    $property->setValue($service, $value);
                }
            }
        }
    }

    /**
     * The instances a container has built: those of frozen services, and those its reflection
     * fallback built (kept inside a closure until the entry is fetched a second time).
     *
     * @return list<object>
     */
    private function built(object $pimple): array
    {
        [$values, $raw] = \Closure::bind(
            fn (): array => [$this->values, $this->raw],
            $pimple,
            $pimple::class,
        )();
        $out = [];
        foreach ($values as $id => $value) {
            if (isset($raw[$id])) {
                if (is_object($value)) {
                    $out[] = $value;
                }
            } elseif (self::isAutowired($value)) {
                $out[] = self::autowired($value);
            }
        }
        return $out;
    }

    /**
     * Whether a service closure is one SimpleContainer::query() registered for an instance it
     * built by reflection (`registerService($name, fn () => $object)`, wrapped once more).
     */
    public static function isAutowired(mixed $service): bool
    {
        if (!$service instanceof \Closure) {
            return false;
        }
        $inner = (new \ReflectionFunction($service))->getClosureUsedVariables()['closure'] ?? null;
        return $inner instanceof \Closure
            && array_key_exists('object', (new \ReflectionFunction($inner))->getClosureUsedVariables());
    }

    /** The instance inside an autowired service closure (see isAutowired()). */
    private static function autowired(\Closure $service): object
    {
        $inner = (new \ReflectionFunction($service))->getClosureUsedVariables()['closure'];
        return (new \ReflectionFunction($inner))->getClosureUsedVariables()['object'];
    }

    /**
     * Forgets every service built, and every entry added, since the snapshot, and gives every
     * service built at boot its properties back.
     */
    public function revert(): void
    {
        if ($this->pimple === null) {
            return;
        }
        $this->restoreServices();
        foreach ($this->containers() as $container) {
            $before = $this->boot[$container] ?? null;
            $pimple = ($this->pimple)($container);
            $this->reverters[$pimple::class] ??= \Closure::bind(
                static function (object $pimple, ?array $before): void {
                    if ($before === null) {
                        // A container created during a request: what its reflection fallback
                        // built is dropped.
                        foreach ($pimple->keys as $id => $_) {
                            if (Containers::isAutowired($pimple->raw[$id] ?? $pimple->values[$id])) {
                                unset($pimple->values[$id], $pimple->keys[$id], $pimple->raw[$id], $pimple->frozen[$id]);
                            } elseif (isset($pimple->raw[$id])) {
                                $pimple->values[$id] = $pimple->raw[$id];
                                unset($pimple->raw[$id], $pimple->frozen[$id]);
                            }
                        }
                        return;
                    }
                    // Pimple sets `raw` only together with `frozen` (offsetGet), and keeps
                    // `frozen` and `raw` within `keys` (offsetUnset drops all four): entries
                    // added since boot are the keys not there at boot, services built since
                    // boot are the frozen entries not frozen at boot.
                    if ($pimple->keys !== $before['keys']) {
                        foreach (array_diff_key($pimple->keys, $before['keys']) as $id => $_) {
                            unset($pimple->values[$id], $pimple->keys[$id], $pimple->raw[$id], $pimple->frozen[$id]);
                        }
                    }
                    if ($pimple->frozen !== $before['frozen']) {
                        foreach (array_diff_key($pimple->frozen, $before['frozen']) as $id => $_) {
                            if (isset($pimple->raw[$id], $pimple->keys[$id])) {
                                $pimple->values[$id] = $pimple->raw[$id];
                                unset($pimple->raw[$id], $pimple->frozen[$id]);
                            }
                        }
                    }
                },
                null,
                $pimple::class,
            );
            ($this->reverters[$pimple::class])($pimple, $before);
            if ($before === null) {
                $this->boot[$container] = $this->state($pimple);
            }
        }
    }

    /** @return array{keys: array<string, true>, frozen: array<string, true>} */
    private function state(object $pimple): array
    {
        return \Closure::bind(
            fn (): array => ['keys' => $this->keys, 'frozen' => $this->frozen],
            $pimple,
            $pimple::class,
        )->__invoke();
    }

    /** @return list<object> the server container and every registered app container */
    private function containers(): array
    {
        $server = \OC::$server;
        $apps = \Closure::bind(
            static fn (object $s): array => array_values($s->appContainers),
            null,
            \OC\ServerContainer::class,
        )($server);
        return [$server, ...$apps];
    }
}
