<?php
// Row f: hello world through RR\Http\PSR7Worker with nyholm/psr7 (Debian's php-nyholm-psr7).
require __DIR__ . '/../../php/autoload.php';

$factory = new Nyholm\Psr7\Factory\Psr17Factory();
$worker = new RR\Http\PSR7Worker(new RR\Worker(), $factory, $factory, $factory);
while ($request = $worker->waitRequest()) {
    $worker->respond($factory->createResponse(200)
        ->withHeader('Content-Type', 'text/plain')
        ->withBody($factory->createStream('Hello, World!')));
}
