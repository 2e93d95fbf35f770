<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\ServiceUnavailableException;
use OCA\DAV\Connector\Sabre\ExceptionLoggerPlugin;
use OCP\App\IAppManager;
use OCP\IConfig;
use OCP\IRequest;
use OCP\Server;
use OCP\Template\ITemplateManager;
use OCP\Util;
use Psr\Log\LoggerInterface;

/**
 * Nextcloud's entry scripts, run once per request on the booted server.
 *
 * index.php, status.php and ocs/v1.php declare nothing and reach lib/base.php through
 * `require_once` (a no-op once booted), so they are `require`d as they are. ocs/v2.php only
 * `require_once`s v1.php, which would be skipped from the second request on: v1.php is run
 * instead. remote.php and public.php declare functions (and remote.php a class), so a second
 * include is fatal; their steps are done here, and the file of the DAV service they pick is
 * `require`d (not `require_once`d) each time.
 */
final class Entries
{
    /** Scripts this class runs in place. Any other script is run once and the worker retired. */
    public const IN_PLACE = ['/index.php', '/status.php', '/ocs/v1.php', '/ocs/v2.php', '/remote.php', '/public.php'];

    public static function run(string $script, string $root): void
    {
        match ($script) {
            '/ocs/v2.php' => self::include($root . '/ocs/v1.php'),
            '/remote.php' => self::remote(),
            '/public.php' => self::publicDav(),
            default => self::include($root . $script),
        };
    }

    /** In a scope of its own, as the web server would run the file. */
    private static function include(string $file): void
    {
        (static function () use ($file): void {
            require $file;
        })();
    }

    /** What remote.php does after booting. */
    private static function remote(): void
    {
        try {
            // The strictest policy for everything DAV serves (as remote.php).
            header("Content-Security-Policy: default-src 'none';");
            if (Util::needUpgrade()) {
                throw new RemoteFailure('Service unavailable', 503);
            }
            $service = self::service(self::remoteServices(), RemoteFailure::class);
            \OC::$REQUESTEDAPP = $service->app;
            $appManager = self::loadRequestApps();
            if ($service->app === 'core') {
                $file = \OC::$SERVERROOT . '/' . $service->file;
            } else {
                if (!$appManager->isEnabledForUser($service->app)) {
                    throw new RemoteFailure('App not installed: ' . $service->app);
                }
                $appManager->loadApp($service->app);
                $file = $appManager->getAppPath($service->app) . '/' . (explode('/', $service->file, 2)[1] ?? '');
            }
            self::dav($file, \OC::$WEBROOT . '/remote.php/' . $service->name . '/');
        } catch (\Throwable $e) {
            self::remoteFailed($e);
        }
    }

    /** What public.php does after booting. */
    private static function publicDav(): void
    {
        try {
            header("Content-Security-Policy: default-src 'none';");
            if (Util::needUpgrade()) {
                throw new \Exception('Service unavailable', 503);
            }
            $service = self::service(
                ['webdav' => 'dav/appinfo/v1/publicwebdav.php', 'dav' => 'dav/appinfo/v2/publicremote.php'],
                \Exception::class,
            );
            $appManager = Server::get(IAppManager::class);
            \OC::$REQUESTEDAPP = $service->app;
            self::loadRequestApps();
            if (!$appManager->isEnabledForUser($service->app)) {
                throw new \Exception('App not installed: ' . $service->app);
            }
            $appManager->loadApp($service->app);
            \OC_User::setIncognitoMode(true);
            self::dav($service->file, \OC::$WEBROOT . '/public.php/' . $service->name . '/');
        } catch (\Throwable $e) {
            $status = $e instanceof ServiceUnavailableException ? 503 : 500;
            Server::get(LoggerInterface::class)->error($e->getMessage(), ['app' => 'public', 'exception' => $e]);
            Server::get(ITemplateManager::class)->printExceptionErrorPage($e, $status);
        }
    }

    /** @return array<string, string> */
    private static function remoteServices(): array
    {
        return [
            'webdav' => 'dav/appinfo/v1/webdav.php',
            'dav' => 'dav/appinfo/v2/remote.php',
            'caldav' => 'dav/appinfo/v1/caldav.php',
            'calendar' => 'dav/appinfo/v1/caldav.php',
            'carddav' => 'dav/appinfo/v1/carddav.php',
            'contacts' => 'dav/appinfo/v1/carddav.php',
            'files' => 'dav/appinfo/v1/webdav.php',
            'direct' => 'dav/appinfo/v2/direct.php',
        ];
    }

    /**
     * The service named by the first PATH_INFO segment, and the app and file serving it (apps
     * may add services with the app config `core`/`remote_<service>`).
     *
     * @param array<string, string> $services
     * @param class-string<\Exception> $failure
     */
    private static function service(array $services, string $failure): DavService
    {
        $pathInfo = Server::get(IRequest::class)->getPathInfo();
        if ($pathInfo === false || $pathInfo === '') {
            throw new $failure('Path not found', 404);
        }
        $end = strpos($pathInfo, '/', 1) ?: strlen($pathInfo);
        $service = substr($pathInfo, 1, $end - 1);
        $file = $services[$service] ?? Server::get(IConfig::class)->getAppValue('core', 'remote_' . $service);
        // remote.php only refuses a missing service (null); public.php also an empty one.
        if ($file === null || ($file === '' && $failure !== RemoteFailure::class)) {
            throw new $failure('Path not found', 404);
        }
        $file = ltrim($file, '/');
        return new DavService($service, explode('/', $file, 2)[0], $file);
    }

    private static function loadRequestApps(): IAppManager
    {
        $appManager = Server::get(IAppManager::class);
        $appManager->loadApps(['authentication']);
        $appManager->loadApps(['extended_authentication']);
        $appManager->loadApps(['filesystem', 'logging']);
        return $appManager;
    }

    /** Runs a DAV service file, which expects `$baseuri` in its scope. */
    private static function dav(string $file, string $baseuri): void
    {
        (static function () use ($file, $baseuri): void {
            require $file;
        })();
    }

    /** remote.php's handleException(). */
    private static function remoteFailed(\Throwable $e): void
    {
        try {
            $request = Server::get(IRequest::class);
            if (str_starts_with($request->getHeader('Content-Type'), 'text/xml')) {
                // A DAV client: a minimal Sabre server turns the failure into a DAV error body.
                $server = new \Sabre\DAV\Server();
                if (!$e instanceof RemoteFailure) {
                    $server->addPlugin(new ExceptionLoggerPlugin('webdav', Server::get(LoggerInterface::class)));
                }
                $server->on('beforeMethod:*', static function () use ($e): void {
                    if ($e instanceof RemoteFailure && $e->getCode() === 503) {
                        throw new \Sabre\DAV\Exception\ServiceUnavailable($e->getMessage());
                    }
                    if ($e instanceof RemoteFailure && $e->getCode() === 404) {
                        throw new \Sabre\DAV\Exception\NotFound($e->getMessage());
                    }
                    throw new \Sabre\DAV\Exception\ServiceUnavailable(get_class($e) . ': ' . $e->getMessage());
                });
                $server->exec();
                return;
            }
            $templates = Server::get(ITemplateManager::class);
            if ($e instanceof RemoteFailure) {
                $templates->printErrorPage($e->getMessage(), '', $e->getCode());
                return;
            }
            Server::get(LoggerInterface::class)->error($e->getMessage(), ['app' => 'remote', 'exception' => $e]);
            $templates->printExceptionErrorPage($e, $e instanceof ServiceUnavailableException ? 503 : 500);
        } catch (\Exception $again) {
            Server::get(ITemplateManager::class)->printExceptionErrorPage($again, 500);
        }
    }
}
