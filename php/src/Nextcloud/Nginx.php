<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * What nginx, configured as Nextcloud's documentation says, does around PHP: picks the route
 * (Routes), gives the script its fastcgi parameters, answers redirects, 404s and static files
 * itself, and adds its headers to every answer.
 */
final class Nginx
{
    /** Headers nginx's documented config adds to every answer (`add_header ... always`). */
    private const HEADERS = [
        'Referrer-Policy: no-referrer',
        'X-Content-Type-Options: nosniff',
        'X-Frame-Options: SAMEORIGIN',
        'X-Permitted-Cross-Domain-Policies: none',
        'X-Robots-Tag: noindex, nofollow',
        'X-XSS-Protection: 1; mode=block',
    ];

    /**
     * What the Nextcloud location block gives PHP beyond nginx's fastcgi_params; php-fpm also
     * shows them to getenv(), where Nextcloud reads them.
     */
    public const FASTCGI_PARAMS = ['modHeadersAvailable' => 'true', 'front_controller_active' => 'true'];

    public function __construct(private readonly string $root)
    {
    }

    /** Where the current request ($_SERVER, as rr filled it) goes. */
    public function route(): Route
    {
        return Routes::resolve(
            (string)($_SERVER['REQUEST_URI'] ?? '/'),
            $this->root,
            (string)($_SERVER['HTTP_USER_AGENT'] ?? ''),
            (($_SERVER['HTTPS'] ?? '') === 'on' ? 'https' : 'http') . '://' . ($_SERVER['HTTP_HOST'] ?? 'localhost'),
        );
    }

    /** The answers nginx gives without PHP: a redirect, a file, or a 404. */
    public function answer(Route $route): void
    {
        match ($route->kind) {
            Route::REDIRECT => $this->page($route->status, $route->location),
            Route::FILE => $this->file($route->path),
            default => $this->page(404),
        };
    }

    /** What nginx's fastcgi_params and the Nextcloud location block give a script, on top of rr's `$_SERVER`. */
    public function fillServer(Route $route): void
    {
        $_SERVER = [
            'SCRIPT_NAME' => $route->path,
            'SCRIPT_FILENAME' => $this->root . $route->path,
            'PATH_INFO' => $route->pathInfo,
            'DOCUMENT_URI' => $route->documentUri,
            'PHP_SELF' => $route->path . $route->pathInfo,
        ] + self::FASTCGI_PARAMS + $_SERVER;
    }

    /**
     * The start of a script's answer: nginx's headers (`always`, so whatever the status). Added
     * before the script runs, not after: an answer streamed to the client (a large download)
     * has its headers sent before the end of the request.
     */
    public function startHeaders(): void
    {
        self::addHeaders();
    }

    /** The end of a script's answer: X-Accel-* headers acted on (dropped) if not sent yet. */
    public function finishHeaders(): void
    {
        if (headers_sent()) {
            return;
        }
        foreach (headers_list() as $line) {
            if (stripos($line, 'X-Accel-') === 0) {
                header_remove(substr($line, 0, (int)strpos($line, ':')));
            }
        }
    }

    /** A static file when rr's `http.static` does not serve it (slow path: set it up). */
    private function file(string $path): void
    {
        $file = $this->root . $path;
        $type = match (strtolower(pathinfo($file, PATHINFO_EXTENSION))) {
            'css' => 'text/css',
            'js', 'mjs' => 'text/javascript',
            'svg' => 'image/svg+xml',
            'png' => 'image/png',
            'gif' => 'image/gif',
            'jpg', 'jpeg' => 'image/jpeg',
            'ico' => 'image/x-icon',
            'webp' => 'image/webp',
            'wasm' => 'application/wasm',
            'json', 'map' => 'application/json',
            'woff' => 'font/woff',
            'woff2' => 'font/woff2',
            'otf' => 'font/otf',
            'txt' => 'text/plain',
            'html' => 'text/html',
            default => 'application/octet-stream',
        };
        $mtime = (int)filemtime($file);
        $size = (int)filesize($file);
        self::headerAsIs('Content-Type: ' . $type);
        header('Last-Modified: ' . gmdate('D, d M Y H:i:s', $mtime) . ' GMT');
        header(sprintf('ETag: "%x-%x"', $mtime, $size));
        header('Accept-Ranges: bytes');
        if (preg_match('#\.(?:css|js|mjs|svg|gif|ico|jpg|png|webp|wasm|tflite|map|ogg|flac)$#', $path) === 1) {
            header('Cache-Control: public, max-age=15778463' . (isset($_GET['v']) ? ', immutable' : ''));
        }
        self::addHeaders();
        readfile($file);
    }

    /** nginx's own answers (its default body, `server_tokens off`). */
    private function page(int $status, string $location = ''): void
    {
        $title = match ($status) {
            301 => '301 Moved Permanently',
            302 => '302 Found',
            default => '404 Not Found',
        };
        http_response_code($status);
        self::headerAsIs('Content-Type: text/html');
        if ($location !== '') {
            header('Location: ' . $location);
        }
        self::addHeaders();
        echo "<html>\r\n<head><title>$title</title></head>\r\n<body>\r\n<center><h1>$title</h1></center>\r\n"
            . "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    }

    private static function addHeaders(): void
    {
        foreach (self::HEADERS as $line) {
            header($line, false);
        }
    }

    /** header() without PHP appending `;charset=` to a text type (nginx sends it as is). */
    private static function headerAsIs(string $line): void
    {
        $charset = (string)ini_get('default_charset');
        ini_set('default_charset', '');
        header($line);
        ini_set('default_charset', $charset);
    }
}
