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

    public function snapshot(): void
    {
        $this->boot = self::access(self::symfony());
    }

    public function restore(): void
    {
        if ($this->boot === null) {
            return;
        }
        $symfony = self::symfony();
        self::access($symfony, $this->boot);
        $forget = \Closure::bind(static function (object $listener): void {
            $listener->service = null;
        }, null, \OC\EventDispatcher\ServiceEventListener::class);
        foreach ($this->boot as $byPriority) {
            foreach ($byPriority as $listeners) {
                foreach ($listeners as $listener) {
                    if ($listener instanceof \OC\EventDispatcher\ServiceEventListener) {
                        $forget($listener);
                    }
                }
            }
        }
    }

    private static function symfony(): object
    {
        $dispatcher = \OCP\Server::get(\OC\EventDispatcher\EventDispatcher::class);
        return \Closure::bind(fn () => $this->dispatcher, $dispatcher, \OC\EventDispatcher\EventDispatcher::class)();
    }

    /**
     * Reads Symfony's listener table, or replaces it (and drops its sorted and optimized
     * copies, which Symfony rebuilds from it).
     *
     * @param array<string, mixed>|null $set
     * @return array<string, mixed>
     */
    private static function access(object $symfony, ?array $set = null): array
    {
        return \Closure::bind(function () use ($set): array {
            if ($set !== null) {
                $this->listeners = $set;
                $this->sorted = [];
                if (isset($this->optimized)) {
                    $this->optimized = [];
                }
            }
            return $this->listeners;
        }, $symfony, \Symfony\Component\EventDispatcher\EventDispatcher::class)();
    }
}
