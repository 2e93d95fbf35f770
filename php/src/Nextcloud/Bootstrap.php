<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\Route\Router;
use OCP\App\IAppManager;
use OCP\IDBConnection;
use OCP\Server;
use RR\Nextcloud\SpeedUps\SpeedUp;

/**
 * Boots Nextcloud once, outside any client request, as a php-fpm request for /status.php on
 * localhost would (status.php starts no session; localhost is always a trusted domain), puts
 * the speed-ups in place, and takes the snapshot every request is reset to.
 */
final class Bootstrap
{
    /**
     * @param list<SpeedUp> $speedUps
     */
    public function __construct(
        private readonly string $root,
        private readonly Containers $containers,
        private readonly Statics $statics,
        private readonly EventListeners $listeners,
        private readonly array $speedUps,
        /** Load every enabled app and its routes (Options::$loadAppsAtBoot). */
        private readonly bool $loadApps = true,
        private readonly InstallState $installState = new InstallState(),
    ) {
    }

    /**
     * Runs lib/base.php; throws when it cannot. Closes the database connection afterwards:
     * nothing may cross a fork, and Doctrine reconnects on the next query.
     */
    public function boot(): void
    {
        if (!is_file($this->root . '/lib/base.php')) {
            throw new \InvalidArgumentException(
                "RR\\Nextcloud\\Kernel: {$this->root} is not a Nextcloud directory (no lib/base.php)",
            );
        }
        if (PHP_SAPI === 'cli' && php_sapi_name() === 'cli') {
            throw new \LogicException(
                'RR\\Nextcloud\\Kernel: start php with -d rr.sapi_name=fpm-fcgi (Nextcloud treats "cli" as the command line: no sessions, no trusted-domain checks)',
            );
        }
        $saved = [$_SERVER, $_GET, $_POST, $_COOKIE, $_FILES, $_REQUEST];
        $_SERVER = [
            'REQUEST_METHOD' => 'GET',
            'REQUEST_URI' => '/status.php',
            'SCRIPT_NAME' => '/status.php',
            'SCRIPT_FILENAME' => $this->root . '/status.php',
            'DOCUMENT_ROOT' => $this->root,
            'HTTP_HOST' => 'localhost',
            'SERVER_NAME' => 'localhost',
            'SERVER_PORT' => '80',
            'REMOTE_ADDR' => '127.0.0.1',
            'SERVER_PROTOCOL' => 'HTTP/1.1',
            'REQUEST_TIME' => time(),
            'REQUEST_TIME_FLOAT' => microtime(true),
        ] + Nginx::FASTCGI_PARAMS;
        $_GET = $_POST = $_COOKIE = $_FILES = $_REQUEST = [];
        // fastcgi params reach getenv() under php-fpm; Nextcloud reads these two with getenv().
        foreach (Nginx::FASTCGI_PARAMS as $name => $value) {
            putenv("$name=$value");
        }
        chdir($this->root);
        require_once $this->root . '/lib/versioncheck.php';
        require_once $this->root . '/lib/base.php';
        if ($this->loadApps) {
            // What every index.php and OCS request does before routing; the routes too.
            Server::get(IAppManager::class)->loadApps();
            Server::get(Router::class)->loadRoutes();
        }
        foreach ($this->speedUps as $speedUp) {
            $speedUp->install();
        }
        // Workers with an APCu each: a token revoked through one must not live on in another's
        // copy of Nextcloud's token cache (TokenCache). Forked workers share the template's.
        if (ApcuScope::ofThisProcess() === ApcuScope::PerProcess && !TokenCache::confineToRequests()) {
            fwrite(STDERR, "RR\\Nextcloud: no token manager found to keep tokens per request: a login revoked through one worker may be taken by the others for up to 10 s\n");
        }
        // The apps just loaded and the versions, read while the app config is still loaded.
        $this->installState->remember();
        self::unloadAppConfig();
        Server::get(IDBConnection::class)->close();
        $this->containers->snapshot();
        $this->statics->snapshot();
        $this->listeners->snapshot();
        // Booted inside a request (single process mode): nothing of the boot goes to the client.
        header_remove();
        http_response_code(200);
        [$_SERVER, $_GET, $_POST, $_COOKIE, $_FILES, $_REQUEST] = $saved;
    }

    /**
     * The app config (OC\AppConfig, built at boot) holds every app's settings once loaded, and
     * every request starts from the boot snapshot: loaded at boot, it would serve the boot's
     * values for the worker's whole life, also after an admin changed one. Snapshotted as not
     * loaded, each request loads it again, as under php-fpm: from the local cache (APCu, kept
     * 3 s by Nextcloud) or the database.
     */
    private static function unloadAppConfig(): void
    {
        $appConfig = Server::get(\OCP\IAppConfig::class);
        if (method_exists($appConfig, 'clearCache')) {
            $appConfig->clearCache();
        }
    }
}
