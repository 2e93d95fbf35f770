<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/** remote.php's RemoteException: a failure answered without logging it (404, 503). */
final class RemoteFailure extends \Exception
{
}
