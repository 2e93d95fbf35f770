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
 * Except (promote()) those that cannot hold anything of a request: built by reflection from a
 * constructor that only stores what it is given (PureConstructor), given only kept objects.
 * Such a service is built once more between requests and from then on treated like one built
 * at boot: its properties are put back after every request, so each request starts with what a
 * fresh build would give.
 *
 * Containers are Pimple containers wrapped by OC\AppFramework\Utility\SimpleContainer; the
 * state is Pimple's own: `values` (service closures, or the instance once built), `raw` and
 * `frozen` (which were built), `keys`.
 */
final class Containers
{
    /**
     * Entries registered with a factory that promote() may keep like a service built by
     * reflection, with the class the factory gives: each factory only passes kept services
     * and the container's constant app name to a constructor PureConstructor accepts.
     * (DIContainer: `new ScopedPsrLogger($c->get(PsrLoggerAdapter::class), $c->get('AppName'))`.)
     */
    private const SAFE_FACTORIES = [
        \Psr\Log\LoggerInterface::class => \OC\AppFramework\ScopedPsrLogger::class,
    ];

    /** @var \WeakMap<object, PimpleState> what each container held after boot */
    private \WeakMap $boot;

    /**
     * The services built at boot (and those promoted since), each with its own properties as
     * they were then.
     *
     * @var list<KeptObject>
     */
    private array $services = [];

    /**
     * The objects of $services and their `(array)` casts when kept (every initialized property,
     * by mangled name, references dereferenced; null for internal classes), in the same order,
     * for rr's RR\changed_objects(): while the cast is identical (`===`, objects by identity)
     * nothing changed and the property-by-property restore has nothing to do.
     *
     * @var list<object>
     */
    private array $objects = [];
    /** @var list<array<string, mixed>|null> */
    private array $casts = [];

    /**
     * Per Pimple class, bound to it: see reverter().
     *
     * @var array<class-string, \Closure(object, ?PimpleState): array<string, mixed>>
     */
    private array $reverters = [];

    /** Reads SimpleContainer's private Pimple container (bound once Nextcloud is loaded). */
    private ?\Closure $pimple = null;

    /**
     * Every object kept across requests: the services built at boot (and the memory caches
     * they hold), the containers, the database connection, and the services promoted since.
     */
    private \SplObjectStorage $kept;

    /**
     * Services built by reflection during the last request that were not there at boot.
     *
     * @var list<PromotionCandidate>
     */
    private array $candidates = [];

    /** @var array<string, true> by PromotionCandidate::key(): the services already looked at */
    private array $decided = [];

    /**
     * The services promoted: verify() builds each again and compares.
     *
     * @var list<PromotedService>
     */
    private array $promoted = [];

    private PureConstructor $pure;

    /** Whether revert() collects candidates for promote() (promoteFromNowOn()). */
    private bool $keepPure = false;

    /** A file to log every promotion decision to, or null. */
    private ?string $log = null;

    public function __construct()
    {
        $this->boot = new \WeakMap();
        $this->kept = new \SplObjectStorage();
        $this->pure = new PureConstructor();
    }

    /**
     * From the next request on, promote() keeps the services it can (KeptServices); `$log` gets
     * one line per decision.
     */
    public function promoteFromNowOn(?string $log = null): void
    {
        $this->keepPure = true;
        $this->log = $log;
    }

    /** Remembers what every container holds now (call once, after boot). */
    public function snapshot(): void
    {
        $this->pimple = Privates::in(
            \OC\AppFramework\Utility\SimpleContainer::class,
            static fn (object $container): object => $container->container,
        );
        foreach ($this->containers() as $container) {
            $pimple = ($this->pimple)($container);
            $this->kept->attach($container);
            $this->boot[$container] = $this->state($pimple);
            foreach ($this->built($pimple) as $service) {
                if ($this->kept->contains($service)) {
                    continue;
                }
                if (self::keepsState($service)) {
                    $this->kept->attach($service);
                    continue;
                }
                $this->keep($service);
            }
        }
        $this->keepHeld();
    }

    /**
     * The objects the boot services hold (directly or in an array property), which are not
     * services themselves, are kept the same way: their properties go back after every request.
     * Under php-fpm they die with the request too, and they do hold per-request state: the user
     * backend's cache of user rows (password hashes: a reset password would go on working),
     * the group backend's groups, the display name cache, a lazy translator's language. rr's own
     * objects (RR\...) are left alone: they are built to outlive requests.
     */
    private function keepHeld(): void
    {
        // Put back, but not counted as kept by promote(): a request may replace what a boot
        // service holds (RequestSetup gives the user session a new session object each time),
        // so a service that holds the boot one is not what a fresh build would be.
        $held = new \SplObjectStorage();
        foreach ($this->services as $service) {
            foreach ($service->properties as $property) {
                if (!$property->initialized) {
                    continue;
                }
                $value = $property->value;
                foreach (is_array($value) ? $value : [$value] as $object) {
                    if (
                        !is_object($object) || $this->kept->contains($object) || $held->contains($object)
                        || str_starts_with($object::class, 'RR\\') || self::keepsState($object)
                        // Of an internal class (PDO, ArrayObject, ...): its state is not in
                        // properties that could be put back.
                        || self::cast($object) === null
                    ) {
                        continue;
                    }
                    $this->keep($object, $held);
                }
            }
        }
    }

    /**
     * Keeps a service across requests with its properties as they are now, put back after
     * every request; the in-memory caches it holds (Root's user folders, ...) too, emptied.
     * They count as kept (for promote()) in `$into`, by default $kept.
     *
     * @return list<PropertyValue> the properties it gets back
     */
    private function keep(object $service, ?\SplObjectStorage $into = null): array
    {
        $into ??= $this->kept;
        $into->attach($service);
        $properties = PropertyValue::allOf($service);
        $this->track($service, $properties);
        foreach ($properties as $property) {
            $value = $property->value;
            if (self::isMemoryCache($value) && !$this->kept->contains($value) && !$into->contains($value)) {
                $into->attach($value);
                $this->track($value, PropertyValue::allOf($value));
            }
        }
        return $properties;
    }

    /**
     * An object whose properties restoreServices() puts back after every request.
     *
     * @param list<PropertyValue> $properties
     */
    private function track(object $object, array $properties): void
    {
        $this->services[] = new KeptObject($object, $properties);
        $this->objects[] = $object;
        $this->casts[] = self::cast($object);
    }

    /**
     * Services that must keep what they hold across requests: the containers themselves, the
     * database connection (its driver connection and transaction level), and the values of
     * config.php (ConfigFiles reads them again when the files change).
     */
    private static function keepsState(object $service): bool
    {
        return $service instanceof \OC\AppFramework\Utility\SimpleContainer
            || $service instanceof \Pimple\Container
            || $service instanceof \Doctrine\DBAL\Connection
            || $service instanceof \OC\DB\ConnectionAdapter
            || $service instanceof \OC\Config
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

    /**
     * A cache object whose entries live outside the worker (APCu, Redis, Memcached), or the
     * null cache, made by the cache factory: it holds only its key prefix, so keeping one
     * across requests is what php-fpm gets by building a new one over the same store.
     */
    private static function isSharedCache(mixed $value): bool
    {
        return is_object($value) && in_array($value::class, [
            \OC\Memcache\APCu::class, \OC\Memcache\Redis::class, \OC\Memcache\Memcached::class,
            \OC\Memcache\NullCache::class,
        ], true);
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

    /** Every kept object whose properties changed gets them back (one level: objects they hold stay). */
    private function restoreServices(): void
    {
        // rr compares every object with its cast in one call, without building casts.
        foreach (\RR\changed_objects($this->objects, $this->casts) as $i) {
            $this->services[$i]->restore();
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
        [$values, $raw] = self::entries($pimple);
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
            $dropped = $this->reverter($pimple)($pimple, $before);
            if ($this->keepPure && $dropped !== []) {
                foreach ($dropped as $id => $value) {
                    // Looked at once: after that, nothing per request but this lookup.
                    if (!isset($this->decided[PromotionCandidate::keyOf($container, (string)$id)])
                        && self::isAutowired($value)) {
                        $class = self::autowired($value)::class;
                        $this->candidates[] = new PromotionCandidate($container, (string)$id, $class);
                    }
                }
            }
            if ($before === null) {
                $this->boot[$container] = $this->state($pimple);
            }
        }
    }

    /**
     * Per Pimple class, a closure bound to it that puts one container back to a state (or, for
     * null, drops what its reflection fallback built), and returns the values of the entries
     * it dropped (service closures), by service id.
     *
     * @return \Closure(object, ?PimpleState): array<string, mixed>
     */
    private function reverter(object $pimple): \Closure
    {
        return $this->reverters[$pimple::class] ??= Privates::in(
            $pimple::class,
            static function (object $pimple, ?PimpleState $before): array {
                $dropped = [];
                if ($before === null) {
                    // A container created during a request: what its reflection fallback
                    // built is dropped.
                    foreach ($pimple->keys as $id => $_) {
                        $value = $pimple->raw[$id] ?? $pimple->values[$id];
                        if (Containers::isAutowired($value)) {
                            $dropped[$id] = $value;
                            unset($pimple->values[$id], $pimple->keys[$id], $pimple->raw[$id], $pimple->frozen[$id]);
                        } elseif (isset($pimple->raw[$id])) {
                            $pimple->values[$id] = $pimple->raw[$id];
                            unset($pimple->raw[$id], $pimple->frozen[$id]);
                        }
                    }
                    return $dropped;
                }
                // Pimple sets `raw` only together with `frozen` (offsetGet), and keeps
                // `frozen` and `raw` within `keys` (offsetUnset drops all four): entries
                // added since boot are the keys not there at boot, services built since
                // boot are the frozen entries not frozen at boot.
                if ($pimple->keys !== $before->keys) {
                    foreach (array_diff_key($pimple->keys, $before->keys) as $id => $_) {
                        $dropped[$id] = $pimple->raw[$id] ?? $pimple->values[$id];
                        unset($pimple->values[$id], $pimple->keys[$id], $pimple->raw[$id], $pimple->frozen[$id]);
                    }
                }
                if ($pimple->frozen !== $before->frozen) {
                    foreach (array_diff_key($pimple->frozen, $before->frozen) as $id => $_) {
                        if (isset($pimple->raw[$id], $pimple->keys[$id])) {
                            $pimple->values[$id] = $pimple->raw[$id];
                            unset($pimple->raw[$id], $pimple->frozen[$id]);
                        }
                    }
                }
                return $dropped;
            },
        );
    }

    /**
     * Keeps, from now on, the services the last request built by reflection whose construction
     * cannot depend on the request (PureConstructor) and whose dependencies are all kept: each
     * is built once more, here between requests, and becomes a service like those built at
     * boot (its properties put back after every request). Anything else the build needed
     * built is dropped again and the service stays rebuilt per request. Each service is
     * looked at once per worker. Call after revert().
     */
    public function promote(): void
    {
        $candidates = $this->candidates;
        $this->candidates = [];
        $dirty = false;
        foreach ($candidates as $candidate) {
            $key = $candidate->key();
            if (isset($this->decided[$key])) {
                continue;
            }
            $this->decided[$key] = true;
            $verdict = $this->pure->check($candidate->class);
            if ($verdict->isAccepted()) {
                $verdict = $this->promoteOne($candidate->container, $candidate->id);
                $dirty = $dirty || !$verdict->isAccepted();
            }
            if ($this->log !== null) {
                // One line each: a reason (an exception's message) may hold tabs or newlines.
                $fields = [$verdict->isAccepted() ? 'kept' : 'per request', self::name($candidate->container), $candidate->id];
                if (!$verdict->isAccepted()) {
                    $fields[] = strtr((string)$verdict->refusal, "\t\r\n", '   ');
                }
                $line = implode("\t", $fields) . "\n";
                file_put_contents($this->log, $line, FILE_APPEND);
            }
        }
        if ($dirty) {
            // A build that was dropped may have touched services kept from boot.
            $this->restoreServices();
        }
    }

    private function promoteOne(object $container, string $id): Verdict
    {
        /** @var \SplObjectStorage<object, PimpleState> $before by container */
        $before = new \SplObjectStorage();
        foreach ($this->containers() as $c) {
            $before[$c] = $this->state(($this->pimple)($c));
        }
        $why = null;
        try {
            $container->query($id);
        } catch (\Throwable $e) {
            $why = 'building it threw ' . $e::class . ': ' . $e->getMessage();
        }
        /** @var \SplObjectStorage<object, PromotedService> $batch what the build added, by object */
        $batch = new \SplObjectStorage();
        foreach ($before as $c) {
            if ($why !== null) {
                break;
            }
            $pimple = ($this->pimple)($c);
            $state = $before[$c];
            $now = $this->state($pimple);
            if ($now->equals($state)) {
                continue;
            }
            [$values, $raw] = self::entries($pimple);
            foreach ($now->builtSince($state) as $builtId => $_) {
                $value = $raw[$builtId] ?? $values[$builtId];
                $autowired = self::isAutowired($value);
                $object = $autowired ? self::autowired($value) : (isset($raw[$builtId]) ? $values[$builtId] : null);
                if (is_object($object) && $this->kept->contains($object)) {
                    // Built at boot and fetched again (Pimple froze it now), or an entry
                    // that gives a kept object (the container itself).
                    continue;
                }
                if (!$autowired && !(is_object($object) && (self::SAFE_FACTORIES[$builtId] ?? null) === $object::class)) {
                    $why = "needs {$builtId}, which is not built by reflection";
                    break;
                }
                $check = $this->pure->check($object::class, !$autowired);
                if (!$check->isAccepted()) {
                    $why = "needs {$builtId}: {$check->refusal}";
                    break;
                }
                // How verify() builds it again: by reflection, or by its factory.
                $factory = $autowired ? null : $raw[$builtId];
                $batch[$object] = new PromotedService($c, $factory, $pimple, $object);
            }
        }
        if ($why === null) {
            foreach ($batch as $object) {
                $why = $this->foreign($object, $batch);
                if ($why !== null) {
                    break;
                }
            }
        }
        if ($why !== null) {
            foreach ($before as $c) {
                $pimple = ($this->pimple)($c);
                $this->reverter($pimple)($pimple, $before[$c]);
            }
            return Verdict::refused($why);
        }
        foreach ($batch as $object) {
            $this->promoted[] = $batch[$object]->withProperties($this->keep($object));
        }
        foreach ($before as $c) {
            $this->boot[$c] = $this->state(($this->pimple)($c));
        }
        return Verdict::accepted();
    }

    /**
     * Null when every property of a freshly built service holds a scalar, an enum case, a kept
     * object or one of the batch being promoted (also inside arrays); else which does not.
     */
    private function foreign(object $object, \SplObjectStorage $batch): ?string
    {
        foreach (PropertyValue::allOf($object) as $property) {
            $name = $property->property->getName();
            if (!$property->initialized) {
                if ($property->property->isReadOnly()) {
                    // Set once, later, in a request: could not be put back.
                    return "readonly \${$name} of " . $object::class . " is set after construction";
                }
                continue;
            }
            $value = $property->value;
            if (self::isMemoryCache($value) && !$this->kept->contains($value)) {
                // Its own cache, made by its constructor (the one `new` PureConstructor
                // allows): kept and emptied after every request with the service.
                continue;
            }
            if (self::isSharedCache($value)) {
                // Made by the cache factory in its constructor (PureConstructor allows that).
                continue;
            }
            $bad = $this->foreignValue($value, $batch);
            if ($bad !== null) {
                return "\${$name} of " . $object::class . " holds {$bad}, which is not kept across requests";
            }
        }
        return null;
    }

    private function foreignValue(mixed $value, \SplObjectStorage $batch): ?string
    {
        if (is_array($value)) {
            foreach ($value as $item) {
                $bad = $this->foreignValue($item, $batch);
                if ($bad !== null) {
                    return $bad;
                }
            }
            return null;
        }
        if (!is_object($value) || $value instanceof \UnitEnum
            || $this->kept->contains($value) || $batch->contains($value)) {
            return null;
        }
        return 'a ' . $value::class;
    }

    /**
     * Builds every promoted service again, now, inside the request (as php-fpm would), and
     * compares it property by property with the kept one as it was built (Options::$verifyKept).
     * Returns what differs (empty when all are the same).
     *
     * @return list<string>
     */
    public function verify(): array
    {
        $out = [];
        foreach ($this->promoted as $promoted) {
            $class = $promoted->service::class;
            try {
                $fresh = $promoted->withProperties(PropertyValue::allOf($promoted->buildAgain()))->properties;
            } catch (\Throwable $e) {
                $out[] = "{$class}: building it again threw " . $e::class . ': ' . $e->getMessage();
                continue;
            }
            $kept = $promoted->properties;
            foreach ($kept + $fresh as $name => $_) {
                $keptInitialized = $kept[$name]->initialized ?? false;
                $keptValue = $kept[$name]->value ?? null;
                $freshInitialized = $fresh[$name]->initialized ?? false;
                $freshValue = $fresh[$name]->value ?? null;
                $same = $keptInitialized === $freshInitialized && ($keptValue === $freshValue
                    // Its own memory cache: a new empty one in each fresh build.
                    || (self::isMemoryCache($keptValue) && is_object($freshValue) && $keptValue::class === $freshValue::class)
                    // A cache over a shared store: a new one with the same prefix.
                    || (self::isSharedCache($keptValue) && is_object($freshValue) && $keptValue::class === $freshValue::class
                        && (array)$keptValue === (array)$freshValue));
                if (!$same) {
                    $out[] = "{$class}: {$name} differs from a fresh build";
                }
            }
        }
        return $out;
    }

    private static function name(object $container): string
    {
        return $container instanceof \OC\AppFramework\DependencyInjection\DIContainer
            ? 'app ' . $container->get('appName')
            : 'server';
    }

    private function state(object $pimple): PimpleState
    {
        return Privates::in(
            $pimple::class,
            static fn (object $p): PimpleState => new PimpleState($p->keys, $p->frozen),
        )($pimple);
    }

    /** @return array{array<string, mixed>, array<string, mixed>} Pimple's `values` and `raw` */
    private static function entries(object $pimple): array
    {
        return Privates::in($pimple::class, static fn (object $p): array => [$p->values, $p->raw])($pimple);
    }

    /** @return list<object> the server container and every registered app container */
    private function containers(): array
    {
        $server = \OC::$server;
        $apps = Privates::get($server, \OC\ServerContainer::class, 'appContainers');
        return [$server, ...array_values($apps)];
    }
}
