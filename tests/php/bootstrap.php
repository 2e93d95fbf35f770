<?php

declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'RR\\Tests\\', 9) !== 0) {
        return;
    }
    $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, 9)) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
