<?php

declare(strict_types=1);

namespace RR\Nextcloud\SpeedUps;

use RR\Nextcloud\Lookups;

/** Container lookups without the exceptions Nextcloud throws and catches on the way (Lookups). */
final class DirectLookups implements SpeedUp
{
    public function install(): void
    {
        Lookups::install();
    }

    public function endRequest(): void
    {
    }
}
