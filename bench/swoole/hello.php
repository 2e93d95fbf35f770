<?php
// Row (e): Swoole's HTTP server, SWOOLE_BASE mode, one worker, hello world.
// Usage: php -d extension=/path/to/swoole.so bench/swoole/hello.php PORT
$port = (int) ($argv[1] ?? 9501);
$server = new Swoole\Http\Server('127.0.0.1', $port, SWOOLE_BASE);
$server->set([
    'worker_num' => 1,
    'log_level' => SWOOLE_LOG_WARNING,
    'http_compression' => false,
]);
$server->on('request', function ($request, $response) {
    $response->header('Content-Type', 'text/plain');
    $response->end('Hello, World!');
});
$server->start();
