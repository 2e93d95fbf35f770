<?php
// Rows e and e-pool: Swoole's HTTP server, SWOOLE_BASE mode, hello world, WORKERS workers
// (default 1; in BASE mode each worker accepts and serves its own connections).
// Usage: php -d extension=/path/to/swoole.so bench/swoole/hello.php PORT [WORKERS]
$port = (int) ($argv[1] ?? 9501);
$workers = (int) ($argv[2] ?? 1);
$server = new Swoole\Http\Server('127.0.0.1', $port, SWOOLE_BASE);
$server->set([
    'worker_num' => $workers,
    'log_level' => SWOOLE_LOG_WARNING,
    'http_compression' => false,
]);
$server->on('request', function ($request, $response) {
    $response->header('Content-Type', 'text/plain');
    $response->end('Hello, World!');
});
$server->start();
