<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/** The DAV service remote.php or public.php picks from the first PATH_INFO segment. */
final class DavService
{
    public function __construct(
        /** The segment (`dav`, `webdav`, `caldav`, ...). */
        public readonly string $name,
        /** The app serving it (`dav`, or `core`). */
        public readonly string $app,
        /** Its file, relative to the apps root (`dav/appinfo/v2/remote.php`). */
        public readonly string $file,
    ) {
    }
}
