<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use PHPUnit\Framework\TestCase;
use RR\Nextcloud\Route;
use RR\Nextcloud\Routes;

/** RR\Nextcloud\Routes against the rules of Nextcloud's documented nginx configuration. */
final class NextcloudRoutesTest extends TestCase
{
    private static string $root;

    public static function setUpBeforeClass(): void
    {
        self::$root = sys_get_temp_dir() . '/rr-nc-routes-' . getmypid();
        $files = [
            'index.php', 'remote.php', 'public.php', 'status.php', 'cron.php', 'ocs/v1.php',
            'ocs/v2.php', 'updater/index.php', 'core/img/logo.svg', 'core/js/app.js', 'robots.txt',
            'config/config.php', 'lib/base.php', 'occ', 'apps/files/appinfo/info.xml',
            '.well-known/acme-challenge/tok', 'apps/legacy/ajax/x.php',
        ];
        foreach ($files as $file) {
            @mkdir(dirname(self::$root . '/' . $file), 0777, true);
            file_put_contents(self::$root . '/' . $file, 'x');
        }
    }

    public static function tearDownAfterClass(): void
    {
        exec('rm -rf ' . escapeshellarg(self::$root));
    }

    private static function route(string $uri, string $agent = ''): Route
    {
        return Routes::resolve($uri, self::$root, $agent, 'http://cloud.test:8080');
    }

    /** @return iterable<string, array{string, string, string}> uri, script, PATH_INFO */
    public static function scripts(): iterable
    {
        yield 'status' => ['/status.php', '/status.php', ''];
        yield 'dav' => ['/remote.php/dav/files/alice/x%20y.txt', '/remote.php', '/dav/files/alice/x y.txt'];
        yield 'ocs v2 with query' => ['/ocs/v2.php/cloud/capabilities?format=json', '/ocs/v2.php', '/cloud/capabilities'];
        yield 'public' => ['/public.php/dav/files/tok/', '/public.php', '/dav/files/tok/'];
        yield 'cron' => ['/cron.php', '/cron.php', ''];
        yield 'pretty url' => ['/apps/files/', '/index.php', '/apps/files/'];
        yield 'login' => ['/login?redirect_url=/x', '/index.php', '/login'];
        yield 'share link' => ['/s/AbCd', '/index.php', '/s/AbCd'];
        // `index index.php`: the directory's index.php, without PATH_INFO.
        yield 'root' => ['/', '/index.php', ''];
        yield 'unknown php rewritten' => ['/nothere.php', '/index.php', '/nothere.php'];
        yield 'index.php path' => ['/index.php/apps/files/', '/index.php', '/apps/files/'];
        yield 'other php rewritten' => ['/apps/legacy/ajax/x.php', '/index.php', '/apps/legacy/ajax/x.php'];
        yield 'missing asset' => ['/core/img/missing.svg', '/index.php', '/core/img/missing.svg'];
        yield 'updater directory' => ['/updater/', '/updater/index.php', ''];
        yield 'dot segments' => ['/apps/./files/../files/', '/index.php', '/apps/files/'];
        yield 'repeated slashes' => ['//remote.php//dav/', '/remote.php', '/dav/'];
    }

    /** @dataProvider scripts */
    public function testScripts(string $uri, string $script, string $pathInfo): void
    {
        $route = self::route($uri);
        self::assertSame(Route::SCRIPT, $route->kind, $uri);
        self::assertSame($script, $route->path, $uri);
        self::assertSame($pathInfo, $route->pathInfo, $uri);
    }

    /** @return iterable<string, array{string, int, string, string}> uri, status, Location, agent */
    public static function redirects(): iterable
    {
        yield 'carddav' => ['/.well-known/carddav', 301, '/remote.php/dav/', ''];
        yield 'caldav' => ['/.well-known/caldav', 301, '/remote.php/dav/', ''];
        yield 'webfinger' => ['/.well-known/webfinger?resource=a', 301, '/index.php/.well-known/webfinger?resource=a', ''];
        yield 'remote' => ['/remote/dav', 301, 'http://cloud.test:8080/remote.php/remote/dav', ''];
        yield 'DavClnt' => ['/?x=1', 302, 'http://cloud.test:8080/remote.php/webdav/?x=1', 'DavClnt'];
    }

    /** @dataProvider redirects */
    public function testRedirects(string $uri, int $status, string $location, string $agent): void
    {
        $route = self::route($uri, $agent);
        self::assertSame(Route::REDIRECT, $route->kind, $uri);
        self::assertSame($status, $route->status, $uri);
        self::assertSame($location, $route->location, $uri);
    }

    /** @return iterable<string, array{string}> */
    public static function hidden(): iterable
    {
        foreach (['/config/config.php', '/config', '/lib/base.php', '/data/x', '/3rdparty/x', '/occ',
            '/.htaccess', '/console.php', '/build/x', '/.well-known/acme-challenge/none',
            '/../etc/passwd', '/a/../../etc/passwd'] as $uri) {
            yield $uri => [$uri];
        }
    }

    /** @dataProvider hidden */
    public function testHiddenOrMissingIsNotFound(string $uri): void
    {
        self::assertSame(Route::NOT_FOUND, self::route($uri)->kind, $uri);
    }

    public function testExistingFilesAreFiles(): void
    {
        foreach (['/core/img/logo.svg', '/core/js/app.js?v=1', '/robots.txt',
            '/apps/files/appinfo/info.xml', '/.well-known/acme-challenge/tok'] as $uri) {
            $route = self::route($uri);
            self::assertSame(Route::FILE, $route->kind, $uri);
        }
    }
}
