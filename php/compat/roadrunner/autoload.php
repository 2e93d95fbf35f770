<?php

/**
 * RoadRunner's worker API (spiral/roadrunner-worker, spiral/roadrunner-http) on rr, so that a
 * worker written for RoadRunner runs unchanged under `php -d extension=rr.so worker.php`.
 * Registered after every other autoloader: when the real packages are installed, Composer's
 * autoloader (registered first, prepended) defines these classes and this one never does.
 */

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'Spiral\\RoadRunner\\', 18) !== 0) {
        return;
    }
    $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, 18)) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
