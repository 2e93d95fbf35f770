<?php

/**
 * Loads rr's PHP library without `composer install`: a PSR-4 autoloader for `RR\` (src/: the
 * PSR-7 worker, the Symfony and Laravel bridges, the Nextcloud runtime), Debian's autoloaders
 * for psr/http-message, psr/http-factory and nyholm/psr7 when their classes are not loadable
 * yet (packages php-psr-http-message, php-psr-http-factory, php-nyholm-psr7), and last the
 * RoadRunner compatibility classes (compat/roadrunner). With Composer (package rr/rr-php), use
 * vendor/autoload.php instead.
 */

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'RR\\', 3) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, 3)) . '.php';
    if (is_file($file)) {
        require $file;
    }
});

// Debian's own files, each only when its classes are not loadable yet (another autoloader, e.g.
// a framework's, may have brought some); they require each other relative to include_path.
foreach ([
    '/usr/share/php/Psr/Http/Message/autoload.php' => \Psr\Http\Message\ServerRequestInterface::class,
    '/usr/share/php/Psr/Http/Message/factory-autoload.php' => \Psr\Http\Message\ServerRequestFactoryInterface::class,
    '/usr/share/php/Nyholm/Psr7/autoload.php' => \Nyholm\Psr7\Factory\Psr17Factory::class,
] as $debianAutoload => $debianClass) {
    if (!class_exists($debianClass) && !interface_exists($debianClass) && is_file($debianAutoload)) {
        require_once $debianAutoload;
    }
}
unset($debianAutoload, $debianClass);

// RoadRunner's worker classes, for workers written for spiral/roadrunner-http; an autoloader
// registered before this one (the real packages) wins.
require __DIR__ . '/compat/roadrunner/autoload.php';
