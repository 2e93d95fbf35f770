<?php

declare(strict_types=1);

namespace RR\Nextcloud\SpeedUps;

use OC\Authentication\Token\Manager;
use OC\Authentication\Token\PublicKeyToken;
use OC\Authentication\Token\PublicKeyTokenProvider;
use OCP\Server;
use RR\Nextcloud\Privates;
use RR\Nextcloud\SealedMemo;
use RR\Nextcloud\TokenPasswords;

/**
 * Makes the server container build TokenPasswords wherever it builds Nextcloud's
 * PublicKeyTokenProvider (the token manager asks for it by type), when that class still has
 * the getPassword() TokenPasswords overrides; another Nextcloud version keeps its own.
 * Checked by reflection first: loading a subclass with an incompatible override is fatal.
 */
final class SealedPasswords implements SpeedUp
{
    public function __construct(
        /** Decrypt again on every hit and refuse a difference (tests). */
        private readonly bool $verify = false,
    ) {
    }

    public function install(): void
    {
        if (!class_exists(PublicKeyTokenProvider::class) || !class_exists(PublicKeyToken::class)) {
            return;
        }
        $class = new \ReflectionClass(PublicKeyTokenProvider::class);
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
        TokenPasswords::$verify = $this->verify;
        \OC::$server->registerAlias(PublicKeyTokenProvider::class, TokenPasswords::class);
        // The token manager (built at boot: the user session holds it) got the provider then.
        $tokens = Server::get(\OC\Authentication\Token\IProvider::class);
        if ($tokens::class === Manager::class) {
            Privates::in(Manager::class, static function (Manager $tokens): void {
                if (isset($tokens->publicKeyTokenProvider)
                    && $tokens->publicKeyTokenProvider::class === PublicKeyTokenProvider::class) {
                    $tokens->publicKeyTokenProvider = Server::get(PublicKeyTokenProvider::class);
                }
            })($tokens);
        }
    }

    public function endRequest(): void
    {
    }
}
