<?php

declare(strict_types=1);

namespace RR\Nextcloud\SpeedUps;

use RR\Nextcloud\Containers;

/**
 * Services a request built whose construction cannot depend on the request are kept from then
 * on like those built at boot (Containers::promote()), instead of being built in every request.
 */
final class KeptServices implements SpeedUp
{
    public function __construct(
        private readonly Containers $containers,
        /** A file that gets one line per service looked at, or null. */
        private readonly ?string $log = null,
    ) {
    }

    public function install(): void
    {
        $this->containers->promoteFromNowOn($this->log);
    }

    /** After the containers are put back: a build it tries and drops again is put back with the rest. */
    public function endRequest(): void
    {
        $this->containers->promote();
    }
}
