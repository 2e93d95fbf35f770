<?php

declare(strict_types=1);

namespace RR\Nextcloud;

use OC\AppFramework\DependencyInjection\DIContainer;

/**
 * An app's container that hands a name it does not hold to the server container at once.
 * DIContainer::query() first asks queryNoFallback(), which throws a QueryException (code 1)
 * for such a name, and then asks the server; since the server's answer or exception is then
 * passed on as is, asking the server directly gives the same result without building that
 * exception (a backtrace each: ~220 per PROPFIND). Lookups installs it, for the Nextcloud
 * versions whose query()/queryNoFallback() it was written against.
 */
final class LookupAppContainer extends DIContainer
{
    public function query(string $name, bool $autoload = true)
    {
        if ($this->holds($name)) {
            return parent::query($name, $autoload);
        }
        return $this->getServer()->query($name, $autoload);
    }

    /** Whether DIContainer::queryNoFallback() would look the name up here instead of throwing. */
    private function holds(string $name): bool
    {
        if ($name === 'AppName' || $name === 'appName') {
            return true;
        }
        $id = $this->sanitizeName($name);
        return $this->offsetExists($id)
            || ($this->appName === 'settings' && str_starts_with($id, 'OC\\Settings\\'))
            || ($this->appName === 'core' && str_starts_with($id, 'OC\\Core\\'))
            || str_starts_with($id, \OC\AppFramework\App::buildAppNamespace($this->appName) . '\\')
            || str_starts_with($id, 'OC\\AppFramework\\Services\\')
            || str_starts_with($id, 'OC\\AppFramework\\Middleware\\');
    }
}
