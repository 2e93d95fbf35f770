<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Serves an existing Nextcloud in place: boots it once (Bootstrap), then runs each request
 * through the entry script nginx would pick (Nginx), with the per-request half of OC::init()
 * redone before it (RequestSetup) and php-fpm's end of request done by hand after it
 * (RequestReset). See docs/nextcloud.md.
 *
 * Use as the `$app` of `RR\Worker::handle()`:
 *
 *     $kernel = new RR\Nextcloud\Kernel('/var/www/nextcloud');
 *     while ($worker->handle($kernel)) { ... }
 */
final class Kernel
{
    private readonly Nginx $nginx;
    private readonly Bootstrap $bootstrap;
    private readonly RequestSetup $setup;
    private readonly RequestReset $reset;
    private readonly ConfigFiles $configFiles;
    private readonly InstallState $installState;
    private readonly ?Phases $phases;

    private bool $booted = false;
    /** False from the start of Nextcloud's code until it returns: still false at the end means exit(). */
    private bool $returned = true;
    private bool $exited = false;
    /**
     * The end-of-request reset failed: the next request could see this one's state, so the
     * worker serves nothing more (the worker script ends it; the pool replaces it).
     */
    private ?string $broken = null;
    /** The last request ran a script not known to be safe in place. */
    private bool $untrusted = false;
    /** What differs from the apps and versions this worker booted with, or null. */
    private ?string $installChanged = null;

    public function __construct(
        private readonly string $root,
        Options $options = new Options(),
    ) {
        // PHP's cycle collector must never destroy an earlier request's garbage during a later
        // request (a CryptoSessionData's destructor would close that request's session); a
        // collection at every request's end walks the booted Nextcloud each time (~0.7 ms).
        // So none while a request runs, and one between requests when it is due
        // (docs/superglobals.md, rr.cycles). Read by handle() at its first request.
        if (\extension_loaded('rr')) {
            \ini_set('rr.cycles', 'between');
        }
        $this->phases = $options->phases();
        $containers = new Containers();
        $statics = new Statics();
        $listeners = new EventListeners();
        $speedUps = $options->speedUps($containers);
        $this->nginx = new Nginx($root);
        $this->installState = new InstallState();
        $this->bootstrap = new Bootstrap(
            $root,
            $containers,
            $statics,
            $listeners,
            $speedUps,
            $options->loadAppsAtBoot,
            $this->installState,
        );
        $this->configFiles = new ConfigFiles();
        $this->setup = new RequestSetup($this->configFiles, $this->phases);
        $this->reset = new RequestReset(
            $containers,
            $statics,
            $listeners,
            $speedUps,
            $this->nginx,
            $options->verifyKept,
            $this->phases,
        );
    }

    /** Boots Nextcloud now if it is not booted yet (else at the first request). */
    public function boot(): void
    {
        if ($this->booted) {
            return;
        }
        if ($this->broken !== null) {
            throw new \LogicException('RR\\Nextcloud\\Kernel: ' . $this->broken);
        }
        // A boot cut short (exception, exit()) cannot be retried: lib/base.php is require_once'd.
        $this->broken = 'the boot of Nextcloud did not complete';
        $this->bootstrap->boot();
        $this->configFiles->remember();
        $this->booted = true;
        $this->broken = null;
    }

    /** One request (the `$app` of `RR\Worker::handle()`). */
    public function __invoke(): void
    {
        $this->exited = false;
        $this->untrusted = false;
        if ($this->broken !== null) {
            http_response_code(503);
            header('Retry-After: 1');
            return;
        }
        $route = $this->nginx->route();
        if ($route->kind === Route::SCRIPT) {
            $this->script($route);
            return;
        }
        $this->nginx->answer($route);
    }

    /** Why the worker must not serve again (the reset after a request failed), or null. */
    public function broken(): ?string
    {
        return $this->broken;
    }

    /** Whether the last request ended with exit()/die() inside Nextcloud. */
    public function exited(): bool
    {
        return $this->exited;
    }

    /**
     * What differs from the enabled apps, their installed versions and Nextcloud's installed
     * version this worker booted with (an app enabled or disabled, an upgrade), or null: the
     * pool should reload (RR\Worker::reload()). Looked at after a request, at most once a
     * second (InstallState); once set, stays set.
     */
    public function installChanged(): ?string
    {
        return $this->installChanged;
    }

    /** Whether the last request ran an entry script that is not known to be safe in place. */
    public function untrusted(): bool
    {
        return $this->untrusted;
    }

    private function script(Route $route): void
    {
        $this->nginx->fillServer($route);
        chdir(dirname($_SERVER['SCRIPT_FILENAME']));
        $this->boot();
        chdir(dirname($_SERVER['SCRIPT_FILENAME']));
        $this->phases?->start($route->path);
        // Registered first, so it runs first; it queues the real end behind every shutdown
        // function Nextcloud registers during the request (they may still need the user).
        register_shutdown_function(function (): void {
            register_shutdown_function($this->end(...));
        });
        $this->untrusted = !in_array($route->path, Entries::IN_PLACE, true);
        $this->returned = false;
        $this->nginx->startHeaders();
        $this->setup->begin($route);
        Entries::run($route->path, $this->root);
        $this->phases?->mark('entry');
        $this->returned = true;
    }

    /** The last shutdown function of a script's request, also after exit(). */
    private function end(): void
    {
        $this->phases?->mark('shutdown');
        $this->exited = !$this->returned;
        $this->returned = true;
        try {
            // Before the reset, which unloads the app config the request may have loaded.
            $this->installChanged = $this->installState->change();
            $this->reset->reset();
        } catch (\Throwable $e) {
            $this->broken = sprintf('%s: %s at %s:%d', $e::class, $e->getMessage(), $e->getFile(), $e->getLine());
            error_log('RR\\Nextcloud: the reset after a request failed, the worker stops: ' . $this->broken);
        }
        $this->phases?->finish();
    }
}
