<?php

declare(strict_types=1);

namespace RR\Nextcloud\SpeedUps;

/**
 * Work a booted worker can skip that php-fpm does in every request, with the same answers.
 * Options::speedUps() says which are on; Bootstrap installs each once at boot and RequestReset
 * calls each at the end of every request. A speed-up written for particular Nextcloud or library sources
 * checks them at install() and changes nothing when they are not those.
 */
interface SpeedUp
{
    /** Puts it in place on the booted Nextcloud (before the boot snapshot). */
    public function install(): void;

    /**
     * The end of a request: after Nextcloud's containers are put back, before the event
     * listeners and statics are (what it touches here is reset with them).
     */
    public function endRequest(): void;
}
