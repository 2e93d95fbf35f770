<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\AppFramework\Http\Request;
use OC\AppFramework\Http\RequestId;
use OC\DB\Connection;
use OC\Route\Router;
use OC\Security\CSP\ContentSecurityPolicyNonceManager;
use OC\Security\CSRF\CsrfTokenManager;
use OCP\IConfig;
use OCP\IRequest;
use OCP\IRequestId;
use OCP\L10N\IFactory;
use OCP\Server;

/**
 * The per-request half of OC::init(), redone on the booted server before each entry script:
 * what lib/base.php reads from the request, and the per-request values services built at boot
 * cache (docs/nextcloud.md, "The request cycle").
 */
final class RequestSetup
{
    /** Whether the database is a server that can go away (not SQLite); known after the boot. */
    private ?bool $databaseServer = null;

    public function __construct(
        private readonly ConfigFiles $configFiles = new ConfigFiles(),
        private readonly ?Phases $phases = null,
    ) {
    }

    public function begin(Route $route): void
    {
        error_clear_last();
        date_default_timezone_set('UTC');
        $this->configFiles->refresh();
        Privates::callStatic(\OC::class, 'handleAuthHeaders');
        Privates::setStatic(\OC::class, 'SUBURI', $route->path);
        \OC::$REQUESTEDAPP = '';
        \OC_User::setIncognitoMode(false);

        $requestId = Server::get(IRequestId::class);
        Privates::set($requestId, RequestId::class, 'requestId', (string)($_SERVER['UNIQUE_ID'] ?? ''));
        self::refillRequest();
        Privates::set(Server::get(IFactory::class), \OC\L10N\Factory::class, 'requestLanguage', '');
        Privates::set(Server::get(CsrfTokenManager::class), CsrfTokenManager::class, 'csrfToken', null);
        Privates::set(
            Server::get(ContentSecurityPolicyNonceManager::class),
            ContentSecurityPolicyNonceManager::class,
            'nonce',
            '',
        );
        self::refreshRouterContext();
        if ($this->databaseServer ??= !in_array(
            Server::get(IConfig::class)->getSystemValueString('dbtype', 'sqlite'),
            ['sqlite', 'sqlite3'],
            true,
        )) {
            self::checkConnectionAtFirstQuery();
        }
        $this->phases?->mark('begin.request');

        \OC::$server->setSession(new \OC\Session\Memory());
        // initSession() itself skips status.php after its ini settings, as under php-fpm.
        \OC::initSession();
        $this->phases?->mark('begin.session');
        \OC::checkConfig();
        \OC_Response::addSecurityHeaders();
        Privates::callStatic(\OC::class, 'performSameSiteCookieProtection', Server::get(IConfig::class));
        self::checkTrustedDomain();
        $this->phases?->mark('begin.checks');
    }

    /**
     * The Request service was built at boot and is held by services built at boot, so its
     * contents are replaced in place by those of a Request built the way the server builds it.
     */
    private static function refillRequest(): void
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

    /**
     * Nextcloud checks an open connection (a dummy SELECT, reconnecting when it fails) only when
     * its last check is over 30 s old, so after a database restart every worker would fail on its
     * dead connection until then. Marked as never checked, the connection is checked at the first
     * query of each request: one round trip, and the request runs on a new connection if the old
     * one died (php-fpm connects anew at every request).
     */
    private static function checkConnectionAtFirstQuery(): void
    {
        $connection = Server::get(Connection::class);
        $checked = Privates::get($connection, Connection::class, 'lastConnectionCheck');
        if ($checked !== []) {
            Privates::set($connection, Connection::class, 'lastConnectionCheck', array_fill_keys(array_keys($checked), 0));
        }
    }

    /** The router's RequestContext was built from the boot request: method, host and scheme. */
    private static function refreshRouterContext(): void
    {
        $context = Privates::get(Server::get(Router::class), Router::class, 'context');
        $request = Server::get(IRequest::class);
        $context->setMethod((string)($_SERVER['REQUEST_METHOD'] ?? 'GET'));
        $context->setHost($request->getServerHost());
        $context->setScheme($request->getServerProtocol());
    }

    /** OC::init()'s trusted domain check (base.php), which runs on every php-fpm request. */
    private static function checkTrustedDomain(): void
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
}
