<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\AppFramework\Http\Request;
use OC\AppFramework\Http\RequestId;
use OC\Lockdown\LockdownManager;
use OC\Route\Router;
use OC\Security\CSP\ContentSecurityPolicyNonceManager;
use OC\Security\CSRF\CsrfTokenManager;
use OCP\App\IAppManager;
use OCP\IConfig;
use OCP\IDBConnection;
use OCP\IRequest;
use OCP\IRequestId;
use OCP\IUserSession;
use OCP\L10N\IFactory;
use OCP\Lock\ILockingProvider;
use OCP\Security\ICrypto;
use OCP\Server;

/**
 * Serves an existing Nextcloud in place: boots it once (lib/base.php), then runs each request
 * through the entry script nginx would pick, with the per-request half of OC::init() redone
 * before it and php-fpm's end of request done by hand after it. See docs/nextcloud.md.
 *
 * Use as the `$app` of `RR\Worker::handle()`:
 *
 *     $kernel = new RR\Nextcloud\Kernel('/var/www/nextcloud');
 *     while ($worker->handle($kernel)) { ... }
 */
final class Kernel
{
    /** Headers nginx's documented config adds to every answer (`add_header ... always`). */
    private const NGINX_HEADERS = [
        'Referrer-Policy: no-referrer',
        'X-Content-Type-Options: nosniff',
        'X-Frame-Options: SAMEORIGIN',
        'X-Permitted-Cross-Domain-Policies: none',
        'X-Robots-Tag: noindex, nofollow',
        'X-XSS-Protection: 1; mode=block',
    ];

    /** Static properties that only live for one request under php-fpm. */
    private const REQUEST_STATICS = [
        \OCP\Util::class => ['scriptsInit', 'scripts', 'scriptDeps', 'token', 'shareManager', 'needUpgradeCache'],
        // Services and per-request caches kept in statics: fetched again from the container.
        \OC_Helper::class => ['cacheFactory', 'quotaIncludeExternalStorage'],
        // The storage factory keeps the wrappers public.php adds (a share's permission mask).
        \OC\Files\Filesystem::class => [
            'loader', 'mounts', 'defaultInstance', 'validator', 'normalizedPathCache',
            'logWarningWhenAddingStorageWrapper',
        ],
        \OCA\Files\App::class => ['navigationManager'],
        // The admin's "allow resharing" setting, read once per request.
        \OC\Share\Constants::class => ['isResharingAllowed'],
        \OCA\Files_Versions\Storage::class => ['application'],
        \OC\Files\Cache\Storage::class => ['globalCache'],
        \OC_User::class => ['incognitoMode'],
        \OC_Util::class => ['styles', 'headers'],
        // Legacy hooks connected during a request.
        \OC_Hook::class => ['registered'],
        // Resource locators collect the page's CSS and JS files.
        \OC\TemplateLayout::class => ['cssLocator', 'jsLocator'],
    ];

    private bool $booted = false;
    private Containers $containers;
    private Statics $statics;
    private EventListeners $listeners;
    /** False from the start of Nextcloud's code until it returns: still false at the end means exit(). */
    private bool $returned = true;
    private bool $exited = false;
    /**
     * The end-of-request reset failed: the next request could see this one's state, so the
     * worker serves nothing more (the worker script ends it; the pool replaces it).
     */
    private ?string $broken = null;
    /** The last request ran a script not known to be safe in place. */
    private bool $untrusted = false;
    /** The Crypto service's cipher when it could be given one that remembers derived keys. */
    private ?MemoizedAes $cipher = null;
    /** The database driver when its connections keep their prepared statements. */
    private ?Db\StatementCacheDriver $statements = null;

    public function __construct(
        private readonly string $root,
        /** Load every enabled app at boot (what a logged-in index.php request does). */
        private readonly bool $loadAppsAtBoot = true,
        /** Times the phases of each request (NEXTCLOUD_PHASES), or null. */
        private readonly ?Phases $phases = null,
        /**
         * Keep services whose construction cannot depend on the request (Containers::promote(),
         * NEXTCLOUD_KEEP_PURE); false rebuilds every service built during a request in each one.
         */
        bool $keepPure = true,
        /** A file that gets one line per service looked at for keeping (NEXTCLOUD_PROMOTION_LOG). */
        ?string $promotionLog = null,
        /**
         * At the end of each request, build every kept service again and compare it with the kept
         * one; any difference stops the worker (NEXTCLOUD_VERIFY_KEPT, for tests: costly).
         */
        private readonly bool $verifyKept = false,
        /**
         * Remember the login password an app password decrypts, sealed under that app password
         * (TokenPasswords, NEXTCLOUD_SEAL_PASSWORDS); false decrypts it in every request.
         */
        private readonly bool $sealPasswords = true,
        /**
         * Let the containers find a service without first throwing and catching an exception
         * (Lookups, NEXTCLOUD_DIRECT_LOOKUPS); false leaves them as Nextcloud made them.
         */
        private readonly bool $directLookups = true,
        /**
         * Keep prepared statements across requests (Db\StatementCacheDriver, SQLite only,
         * NEXTCLOUD_STATEMENT_CACHE); false prepares every query again, as Nextcloud does.
         */
        private readonly bool $statementCache = true,
    ) {
        $this->containers = new Containers($keepPure, $promotionLog);
        $this->statics = new Statics(self::REQUEST_STATICS);
        $this->listeners = new EventListeners();
    }

    /**
     * Boots Nextcloud outside any client request, as a php-fpm request for /status.php on
     * localhost would (status.php starts no session; localhost is always a trusted domain).
     * Closes the database connection afterwards: nothing may cross a fork, and Doctrine
     * reconnects on the next query.
     */
    public function boot(): void
    {
        if ($this->booted) {
            return;
        }
        if ($this->broken !== null) {
            throw new \LogicException('RR\\Nextcloud\\Kernel: ' . $this->broken);
        }
        // A boot cut short (exception, exit()) cannot be retried: lib/base.php is require_once'd.
        $this->broken = 'the boot of Nextcloud did not complete';
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
        ] + $this->fastcgiParams();
        $_GET = $_POST = $_COOKIE = $_FILES = $_REQUEST = [];
        // fastcgi params reach getenv() under php-fpm; Nextcloud reads these two with getenv().
        foreach ($this->fastcgiParams() as $name => $value) {
            putenv("$name=$value");
        }
        chdir($this->root);
        require_once $this->root . '/lib/versioncheck.php';
        require_once $this->root . '/lib/base.php';
        if ($this->loadAppsAtBoot) {
            // What every index.php and OCS request does before routing; the routes too.
            Server::get(IAppManager::class)->loadApps();
            Server::get(Router::class)->loadRoutes();
        }
        self::keepRoutes();
        $this->cipher = self::memoizeCrypto();
        if ($this->sealPasswords) {
            self::sealTokenPasswords($this->verifyKept);
        }
        self::unloadAppConfig();
        if ($this->directLookups) {
            Lookups::install();
        }
        if ($this->statementCache) {
            // Connections opened from now on (this one is closed below) keep their statements.
            $this->statements = Db\StatementCacheDriver::install(Server::get(\OC\DB\Connection::class));
        }
        Server::get(IDBConnection::class)->close();
        $this->containers->snapshot();
        $this->statics->snapshot();
        $this->listeners->snapshot();
        // Booted inside a request (single process mode): nothing of the boot goes to the client.
        header_remove();
        http_response_code(200);
        [$_SERVER, $_GET, $_POST, $_COOKIE, $_FILES, $_REQUEST] = $saved;
        $this->booted = true;
        $this->broken = null;
    }

    /** One request (the `$app` of `RR\Worker::handle()`). */
    public function __invoke(): void
    {
        $this->exited = false;
        $this->untrusted = false;
        if ($this->broken !== null) {
            http_response_code(503);
            header('Retry-After: 1');
            return;
        }
        $route = Routes::resolve(
            (string)($_SERVER['REQUEST_URI'] ?? '/'),
            $this->root,
            (string)($_SERVER['HTTP_USER_AGENT'] ?? ''),
            (($_SERVER['HTTPS'] ?? '') === 'on' ? 'https' : 'http') . '://' . ($_SERVER['HTTP_HOST'] ?? 'localhost'),
        );
        match ($route->kind) {
            Route::SCRIPT => $this->script($route),
            Route::REDIRECT => $this->nginxAnswer($route->status, $route->location),
            Route::FILE => $this->file($route->path),
            default => $this->nginxAnswer(404),
        };
    }

    /** Why the worker must not serve again (the reset after a request failed), or null. */
    public function broken(): ?string
    {
        return $this->broken;
    }

    /** Whether the last request ended with exit()/die() inside Nextcloud. */
    public function exited(): bool
    {
        return $this->exited;
    }

    /** Whether the last request ran an entry script that is not known to be safe in place. */
    public function untrusted(): bool
    {
        return $this->untrusted;
    }

    private function script(Route $route): void
    {
        $this->fillServer($route);
        chdir(dirname($_SERVER['SCRIPT_FILENAME']));
        $this->boot();
        chdir(dirname($_SERVER['SCRIPT_FILENAME']));
        $this->phases?->start($route->path);
        // Registered first, so it runs first; it queues the real end behind every shutdown
        // function Nextcloud registers during the request (they may still need the user).
        register_shutdown_function(function (): void {
            register_shutdown_function($this->end(...));
        });
        $this->untrusted = !in_array($route->path, Entries::IN_PLACE, true);
        $this->returned = false;
        $this->begin($route);
        Entries::run($route->path, $this->root);
        $this->phases?->mark('entry');
        $this->returned = true;
    }

    /** What nginx's fastcgi_params and the Nextcloud location block give PHP on top of rr's. */
    private function fillServer(Route $route): void
    {
        $_SERVER = [
            'SCRIPT_NAME' => $route->path,
            'SCRIPT_FILENAME' => $this->root . $route->path,
            'PATH_INFO' => $route->pathInfo,
            'DOCUMENT_URI' => $route->documentUri,
            'PHP_SELF' => $route->path . $route->pathInfo,
        ] + $this->fastcgiParams() + $_SERVER;
    }

    /** @return array<string, string> */
    private function fastcgiParams(): array
    {
        return ['modHeadersAvailable' => 'true', 'front_controller_active' => 'true'];
    }

    /** The per-request half of OC::init(), on the booted server. */
    private function begin(Route $route): void
    {
        error_clear_last();
        date_default_timezone_set('UTC');
        Privates::callStatic(\OC::class, 'handleAuthHeaders');
        Privates::setStatic(\OC::class, 'SUBURI', $route->path);
        \OC::$REQUESTEDAPP = '';
        \OC_User::setIncognitoMode(false);

        $requestId = Server::get(IRequestId::class);
        Privates::set($requestId, RequestId::class, 'requestId', (string)($_SERVER['UNIQUE_ID'] ?? ''));
        $this->refillRequest();
        Privates::set(Server::get(IFactory::class), \OC\L10N\Factory::class, 'requestLanguage', '');
        Privates::set(Server::get(CsrfTokenManager::class), CsrfTokenManager::class, 'csrfToken', null);
        Privates::set(
            Server::get(ContentSecurityPolicyNonceManager::class),
            ContentSecurityPolicyNonceManager::class,
            'nonce',
            '',
        );
        $this->refreshRouterContext();
        $this->phases?->mark('begin.request');

        \OC::$server->setSession(new \OC\Session\Memory());
        // initSession() itself skips status.php after its ini settings, as under php-fpm.
        \OC::initSession();
        $this->phases?->mark('begin.session');
        \OC::checkConfig();
        \OC_Response::addSecurityHeaders();
        Privates::callStatic(\OC::class, 'performSameSiteCookieProtection', Server::get(IConfig::class));
        $this->checkTrustedDomain();
        $this->phases?->mark('begin.checks');
    }

    /**
     * The Request service was built at boot and is held by services built at boot, so its
     * contents are replaced in place by those of a Request built the way the server builds it.
     */
    private function refillRequest(): void
    {
        $current = Server::get(Request::class);
        $fresh = new Request(
            [
                'get' => $_GET,
                'post' => $_POST,
                'files' => $_FILES,
                'server' => $_SERVER,
                'env' => $_ENV,
                'cookies' => $_COOKIE,
                'method' => $_SERVER['REQUEST_METHOD'] ?? '',
                'urlParams' => [],
            ],
            Server::get(IRequestId::class),
            Server::get(IConfig::class),
            Server::get(CsrfTokenManager::class),
            'php://input',
        );
        Privates::in(Request::class, static function (Request $to, Request $from): void {
            foreach (get_object_vars($from) as $name => $value) {
                $to->$name = $value;
            }
        })($current, $fresh);
    }

    /** The router's RequestContext was built from the boot request: method, host and scheme. */
    private function refreshRouterContext(): void
    {
        $router = Server::get(Router::class);
        $context = Privates::get($router, Router::class, 'context');
        $request = Server::get(IRequest::class);
        $context->setMethod((string)($_SERVER['REQUEST_METHOD'] ?? 'GET'));
        $context->setHost($request->getServerHost());
        $context->setScheme($request->getServerProtocol());
    }

    /** OC::init()'s trusted domain check (base.php), which runs on every php-fpm request. */
    private function checkTrustedDomain(): void
    {
        $request = Server::get(IRequest::class);
        $config = Server::get(IConfig::class);
        if (!$config->getSystemValueBool('installed', false)
            || Server::get(\OC\Security\TrustedDomainHelper::class)->isTrustedDomain($request->getInsecureServerHost())) {
            return;
        }
        if (str_ends_with($request->getRequestUri(), '/status.php')) {
            http_response_code(400);
            header('Content-Type: application/json');
            echo '{"error": "Trusted domain error.", "code": 15}';
            exit();
        }
        if (str_starts_with($request->getPathInfo() ?: '', '/css/')) {
            return;
        }
        http_response_code(400);
        Server::get(\Psr\Log\LoggerInterface::class)->info(
            'Trusted domain error. "{remoteAddress}" tried to access using "{host}" as host.',
            ['app' => 'core', 'remoteAddress' => $request->getRemoteAddress(), 'host' => $request->getInsecureServerHost()],
        );
        $page = Server::get(\OCP\Template\ITemplateManager::class)->getTemplate('core', 'untrustedDomain', 'guest');
        $page->assign('docUrl', Server::get(\OCP\IURLGenerator::class)->linkToDocs('admin-trusted-domains'));
        $page->printPage();
        exit();
    }

    /**
     * php-fpm's end of request, by hand: Nextcloud's shutdown functions (error log, temp files,
     * locks), the session written, the user and the filesystem forgotten, every service built
     * during the request dropped. Runs as the last shutdown function, also after exit().
     */
    private function end(): void
    {
        $this->phases?->mark('shutdown');
        try {
            $this->reset();
        } catch (\Throwable $e) {
            $this->broken = sprintf('%s: %s at %s:%d', $e::class, $e->getMessage(), $e->getFile(), $e->getLine());
            error_log('RR\\Nextcloud: the reset after a request failed, the worker stops: ' . $this->broken);
        }
        $this->phases?->finish();
    }

    private function reset(): void
    {
        $this->exited = !$this->returned;
        $this->returned = true;
        if ($this->verifyKept) {
            $differences = $this->containers->verify();
            if ($differences !== []) {
                throw new \LogicException('kept services differ from fresh builds: ' . implode('; ', $differences));
            }
        }
        (new \OC\Log\ErrorHandler(Server::get(\Psr\Log\LoggerInterface::class)))->onShutdown();
        Server::get(\OCP\ITempManager::class)->clean();
        self::releaseLocks(Server::get(ILockingProvider::class));
        $db = Server::get(IDBConnection::class);
        while ($db->inTransaction()) {
            // Only exit() in the middle of a transaction gets here; php-fpm would drop the
            // connection, which rolls back.
            $db->rollBack();
        }
        if (http_response_code() >= 500) {
            // The request may have failed on a lost database (a restart): Nextcloud checks its
            // connection only every 30 s and would fail on the dead one until then. The next
            // request connects anew, as under php-fpm.
            $db->close();
        }
        // php-fpm destroys every statement at the end of the request: no read stays open.
        $this->statements?->endRequest();
        \OC::$server->getSession()->close();
        if (session_status() === PHP_SESSION_ACTIVE) {
            session_write_close();
        }
        $userSession = Server::get(IUserSession::class);
        $userSession->setVolatileActiveUser(null);
        \OC::$server->setSession(new \OC\Session\Memory());
        \OC_User::setIncognitoMode(false);
        \OC_Util::tearDownFS();
        $lockdown = Server::get('LockdownManager');
        Privates::set($lockdown, LockdownManager::class, 'enabled', false);
        Privates::set($lockdown, LockdownManager::class, 'scope', null);
        $this->phases?->mark('reset.nextcloud');
        $this->containers->revert();
        // Before the listeners and statics are put back: a build it tries and drops again may
        // have touched them.
        $this->containers->promote();
        $this->phases?->mark('reset.containers');
        $this->listeners->restore();
        $this->phases?->mark('reset.listeners');
        $this->statics->restore();
        // Every encryption of the request (the session's last one is above) is done.
        $this->cipher?->forget();
        $this->phases?->mark('reset.statics');
        if (!headers_sent()) {
            // nginx acts on X-Accel-* headers and does not pass them on.
            foreach (headers_list() as $line) {
                if (stripos($line, 'X-Accel-') === 0) {
                    header_remove(substr($line, 0, (int)strpos($line, ':')));
                }
            }
            foreach (self::NGINX_HEADERS as $line) {
                header($line, false);
            }
        }
        $this->phases?->mark('reset.headers');
    }

    /** The router keeps the compiled routes it fetches from APCu (RouteCache). */
    private static function keepRoutes(): void
    {
        $router = Server::get(Router::class);
        if (!$router instanceof \OC\Route\CachingRouter) {
            return;
        }
        $cache = Privates::get($router, \OC\Route\CachingRouter::class, 'cache');
        if (!$cache instanceof RouteCache) {
            Privates::set($router, \OC\Route\CachingRouter::class, 'cache', new RouteCache($cache));
        }
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

    /**
     * Gives Nextcloud's Crypto service (built at boot, shared by every service) an AES that
     * derives each password's key once per request (MemoizedAes): a request that starts a
     * session derives the same key three times. The key of the instance secret is kept for
     * the worker's life: every app-password login encrypts the login credentials with it. Left as it is when the service or its cipher is
     * not exactly the class this was written for (another Nextcloud or phpseclib version).
     */
    private static function memoizeCrypto(): ?MemoizedAes
    {
        $crypto = Server::get(ICrypto::class);
        if ($crypto::class !== \OC\Security\Crypto::class || !class_exists(\phpseclib\Crypt\AES::class)) {
            return null;
        }
        return Privates::in(\OC\Security\Crypto::class, static function (object $crypto): ?MemoizedAes {
            if (!isset($crypto->cipher) || $crypto->cipher::class !== \phpseclib\Crypt\AES::class) {
                return null;
            }
            // Crypto's constructor does `new AES()`; encrypt() and decrypt() set key and IV first.
            $cipher = new MemoizedAes();
            // encrypt() and decrypt() without a password use the instance secret, through the
            // same derivation as a given one (Crypto::encrypt(), Nextcloud 32).
            $secret = $crypto->config->getSystemValueString('secret');
            if ($secret !== '') {
                $cipher->keep(substr(hash_hkdf('sha512', $secret), 0, 32));
            }
            return $crypto->cipher = $cipher;
        })($crypto);
    }

    /**
     * Makes the server container build TokenPasswords wherever it builds Nextcloud's
     * PublicKeyTokenProvider (the token manager asks for it by type), when that class still has
     * the getPassword() TokenPasswords overrides; another Nextcloud version keeps its own.
     * Checked by reflection first: loading a subclass with an incompatible override is fatal.
     */
    private static function sealTokenPasswords(bool $verify): void
    {
        $provider = \OC\Authentication\Token\PublicKeyTokenProvider::class;
        if (!class_exists($provider) || !class_exists(\OC\Authentication\Token\PublicKeyToken::class)) {
            return;
        }
        $class = new \ReflectionClass($provider);
        if ($class->isFinal() || !$class->hasMethod('getPassword')) {
            return;
        }
        $method = $class->getMethod('getPassword');
        $types = array_map(static fn (\ReflectionParameter $p): string => (string)$p->getType(), $method->getParameters());
        if (
            $method->isFinal() || !$method->isPublic() || $method->isStatic()
            || $types !== [\OCP\Authentication\Token\IToken::class, 'string']
            || (string)$method->getReturnType() !== 'string'
        ) {
            return;
        }
        TokenPasswords::$memo = new SealedMemo();
        TokenPasswords::$verify = $verify;
        \OC::$server->registerAlias($provider, TokenPasswords::class);
        // The token manager (built at boot: the user session holds it) got the provider then.
        $tokens = Server::get(\OC\Authentication\Token\IProvider::class);
        if ($tokens::class === \OC\Authentication\Token\Manager::class) {
            Privates::in(\OC\Authentication\Token\Manager::class, static function (object $tokens) use ($provider): void {
                if (isset($tokens->publicKeyTokenProvider) && $tokens->publicKeyTokenProvider::class === $provider) {
                    $tokens->publicKeyTokenProvider = Server::get($provider);
                }
            })($tokens);
        }
    }

    /**
     * ILockingProvider::releaseAll(), php-fpm's end-of-request lock cleanup. The database
     * provider builds an UPDATE query (quoting a literal, which connects to the database) even
     * when it has nothing to release, and runs it only for shared locks it cached: when it
     * holds no lock at all, that call changes nothing, so it is left out. Any other provider,
     * or one holding a lock, gets the call.
     */
    private static function releaseLocks(ILockingProvider $provider): void
    {
        if ($provider::class === \OC\Lock\DBLockingProvider::class) {
            $idle = Privates::in(
                \OC\Lock\DBLockingProvider::class,
                static fn (object $p): bool => $p->acquiredLocks === ['shared' => [], 'exclusive' => []]
                    && (!$p->cacheSharedLocks || array_filter($p->sharedLocks) === []),
            )($provider);
            if ($idle) {
                return;
            }
        }
        $provider->releaseAll();
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
        foreach (self::NGINX_HEADERS as $line) {
            header($line, false);
        }
        readfile($file);
    }

    /** nginx's own answers (its default body, `server_tokens off`). */
    private function nginxAnswer(int $status, string $location = ''): void
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
        foreach (self::NGINX_HEADERS as $line) {
            header($line, false);
        }
        echo "<html>\r\n<head><title>$title</title></head>\r\n<body>\r\n<center><h1>$title</h1></center>\r\n"
            . "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
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
