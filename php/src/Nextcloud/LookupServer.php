<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * The server container, asking an app's container at once for an app's service it does not
 * hold itself. ServerContainer::query() first tries its own entries for an `OCA\` name with
 * autoloading off, which throws a QueryNotFoundException when there is none, and then asks the
 * app's queryNoFallback(); checking for the entry instead gives the same result without
 * building that exception (a backtrace each: ~60 per PROPFIND). Lookups installs it, for the
 * Nextcloud versions whose ServerContainer::query() it was written against.
 */
final class LookupServer extends \OC\Server
{
    public function query(string $name, bool $autoload = true)
    {
        $id = $this->sanitizeName($name);
        if (str_starts_with($id, 'OCA\\') && !$this->offsetExists($id)) {
            $app = $this->getAppContainerForService($id);
            if ($app !== null) {
                return $app->queryNoFallback($id);
            }
        }
        return parent::query($name, $autoload);
    }
}
