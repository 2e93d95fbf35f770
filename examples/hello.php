<?php
// The smallest rr worker: boots once, then answers every request.
//   php -d extension=./target/release/rr.so examples/hello.php
declare(strict_types=1);

$worker = new RR\Worker();
while ($req = $worker->waitRequest()) {
    $worker->respond(200, "hello {$req->uri}\n", ['Content-Type' => 'text/plain']);
}
