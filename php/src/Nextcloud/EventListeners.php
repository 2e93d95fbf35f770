<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * The event dispatcher's listeners go back to their state after boot after each request:
 * listeners a request added (closures that may hold its user) are dropped, and every service
 * listener forgets the listener object it resolved (built with the request's `$userId`), so
 * the next event resolves a fresh one from the container.
 */
final class EventListeners
{
    /** @var array<string, mixed>|null Symfony's `listeners` after boot */
    private ?array $boot = null;

    /** Forgets the service every boot ServiceEventListener resolved (bound once, at snapshot). */
    private ?\Closure $forget = null;

    public function snapshot(): void
    {
        $this->boot = self::access(self::symfony());
        $services = [];
        foreach ($this->boot as $byPriority) {
            foreach ($byPriority as $listeners) {
                foreach ($listeners as $listener) {
                    if ($listener instanceof \OC\EventDispatcher\ServiceEventListener) {
                        $services[] = $listener;
                    }
                }
            }
        }
        $this->forget = Privates::in(\OC\EventDispatcher\ServiceEventListener::class, static function () use ($services): void {
            foreach ($services as $listener) {
                $listener->service = null;
            }
        });
    }

    public function restore(): void
    {
        if ($this->boot === null) {
            return;
        }
        self::access(self::symfony(), $this->boot);
        ($this->forget)();
    }

    private static function symfony(): object
    {
        $dispatcher = \OCP\Server::get(\OC\EventDispatcher\EventDispatcher::class);
        return Privates::get($dispatcher, \OC\EventDispatcher\EventDispatcher::class, 'dispatcher');
    }

    /**
     * Reads Symfony's listener table, or replaces it when it differs (and drops its sorted and
     * optimized copies, which Symfony rebuilds from it).
     *
     * @param array<string, mixed>|null $set
     * @return array<string, mixed>
     */
    private static function access(object $symfony, ?array $set = null): array
    {
        return Privates::in(\Symfony\Component\EventDispatcher\EventDispatcher::class, static function (object $symfony) use ($set): array {
            // Unchanged since the last restore (`===`: the same listeners, objects by identity):
            // Symfony drops its sorted and optimized copies of an event at every change, so
            // those it holds now were built from this table and rebuilding them gives the same.
            if ($set !== null && $symfony->listeners !== $set) {
                $symfony->listeners = $set;
                $symfony->sorted = [];
                if (isset($symfony->optimized)) {
                    $symfony->optimized = [];
                }
            }
            return $symfony->listeners;
        })($symfony);
    }
}
