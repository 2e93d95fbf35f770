<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Nextcloud's documented nginx configuration ("Nextcloud in the webroot of nginx",
 * admin_manual/installation/nginx.html), turned into one pure function: request URI in,
 * {@see Route} out. Rule order and regular expressions follow that file's `location` blocks.
 */
final class Routes
{
    /** `location ~ \.php(?:$|/)`: the scripts that are not rewritten to /index.php. */
    private const DIRECT_SCRIPTS = '#^/(?!index|remote|public|cron|core/ajax/update|status|ocs/v[12]|updater/.+|ocs-provider/.+|.+/richdocumentscode(_arm64)?/proxy)#';

    /** The two `return 404` blocks that hide parts of the tree. */
    private const HIDDEN = [
        '#^/(?:build|tests|config|lib|3rdparty|templates|data)(?:$|/)#',
        '#^/(?:\.|autotest|occ|issue|indie|db_|console)#',
    ];

    /** `location ~ \.(?:css|js|...)$` and `location ~ \.(otf|woff2?)$`: files, else index.php. */
    private const ASSET = '#\.(?:css|js|mjs|svg|gif|ico|jpg|png|webp|wasm|tflite|map|ogg|flac|otf|woff2?)$#';

    /**
     * @param string $requestUri the raw request target (`$request_uri`: path and query)
     * @param string $root the document root, to tell existing files and directories
     * @param string $userAgent for the `DavClnt` rule on `/`
     * @param string $origin `scheme://host[:port]` for the redirects nginx makes absolute (all but
     *                       those under /.well-known, which has `absolute_redirect off`)
     */
    public static function resolve(
        string $requestUri,
        string $root,
        string $userAgent = '',
        string $origin = '',
    ): Route {
        [$rawPath, $query] = array_pad(explode('?', $requestUri, 2), 2, null);
        $uri = self::normalize(rawurldecode($rawPath));
        if ($uri === null) {
            return Route::notFound();
        }
        $args = $query !== null ? '?' . $query : '';

        if ($uri === '/' && str_starts_with($userAgent, 'DavClnt')) {
            return Route::redirect($origin . '/remote.php/webdav/' . $args, 302);
        }
        if (str_starts_with($uri, '/.well-known')) {
            if ($uri === '/.well-known/carddav' || $uri === '/.well-known/caldav') {
                return Route::redirect('/remote.php/dav/', 301);
            }
            if (str_starts_with($uri, '/.well-known/acme-challenge')
                || str_starts_with($uri, '/.well-known/pki-validation')) {
                return is_file($root . $uri) ? Route::file($uri) : Route::notFound();
            }
            return Route::redirect('/index.php' . $requestUri, 301);
        }
        foreach (self::HIDDEN as $hidden) {
            if (preg_match($hidden, $uri) === 1) {
                return Route::notFound();
            }
        }
        if (preg_match('#\.php(?:$|/)#', $uri) === 1) {
            if (preg_match(self::DIRECT_SCRIPTS, $uri) === 1) {
                $uri = '/index.php' . $uri;
            }
            return self::php($uri, $root);
        }
        if (preg_match(self::ASSET, $uri) === 1) {
            return is_file($root . $uri) ? Route::file($uri) : self::php('/index.php' . $uri, $root);
        }
        if (str_starts_with($uri, '/remote')) {
            return Route::redirect($origin . '/remote.php' . $requestUri, 301);
        }
        if ($uri !== '/' && is_file($root . $uri)) {
            return Route::file($uri);
        }
        if (is_dir($root . $uri)) {
            // `index index.php index.html /index.php$request_uri`
            $dir = rtrim($uri, '/') . '/';
            if (is_file($root . $dir . 'index.php')) {
                return self::php($dir . 'index.php', $root);
            }
            if (is_file($root . $dir . 'index.html')) {
                return Route::file($dir . 'index.html');
            }
        }
        return self::php('/index.php' . $uri, $root);
    }

    /** `fastcgi_split_path_info ^(.+?\.php)(/.*)$` and `try_files $fastcgi_script_name =404`. */
    private static function php(string $uri, string $root): Route
    {
        if (preg_match('#^(.+?\.php)(/.*)$#', $uri, $m) === 1) {
            [$script, $pathInfo] = [$m[1], $m[2]];
        } else {
            [$script, $pathInfo] = [$uri, ''];
        }
        if (!is_file($root . $script)) {
            return Route::notFound();
        }
        return Route::script($script, $pathInfo, $uri);
    }

    /**
     * nginx's URI normalization: `.` and `..` segments resolved, repeated slashes merged. A path
     * that climbs above the root is refused (nginx answers 400; here: not found).
     */
    private static function normalize(string $path): ?string
    {
        if ($path === '' || $path[0] !== '/' || str_contains($path, "\0")) {
            return null;
        }
        $out = [];
        $segments = explode('/', substr($path, 1));
        $last = count($segments) - 1;
        foreach ($segments as $i => $segment) {
            if ($segment === '.' || ($segment === '' && $i !== $last)) {
                continue;
            }
            if ($segment === '..') {
                if ($out === []) {
                    return null;
                }
                array_pop($out);
                continue;
            }
            $out[] = $segment;
        }
        return '/' . implode('/', $out);
    }
}
