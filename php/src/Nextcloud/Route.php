<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Where one request goes, as Nextcloud's documented nginx configuration decides it: a PHP
 * entry script (with its PATH_INFO), a redirect, a static file, or a 404.
 */
final class Route
{
    public const SCRIPT = 'script';
    public const REDIRECT = 'redirect';
    public const FILE = 'file';
    public const NOT_FOUND = 'not_found';

    private function __construct(
        public readonly string $kind,
        /** For SCRIPT: the script's URL path (`/remote.php`); for FILE: the URL path. */
        public readonly string $path = '',
        /** For SCRIPT: `$fastcgi_path_info` (may be empty). */
        public readonly string $pathInfo = '',
        /** For SCRIPT: nginx's `$document_uri` after rewrites. */
        public readonly string $documentUri = '',
        /** For REDIRECT: the Location and the status. */
        public readonly string $location = '',
        public readonly int $status = 200,
    ) {
    }

    public static function script(string $script, string $pathInfo, string $documentUri): self
    {
        return new self(self::SCRIPT, $script, $pathInfo, $documentUri);
    }

    public static function redirect(string $location, int $status): self
    {
        return new self(self::REDIRECT, location: $location, status: $status);
    }

    public static function file(string $path): self
    {
        return new self(self::FILE, $path);
    }

    public static function notFound(): self
    {
        return new self(self::NOT_FOUND, status: 404);
    }
}
