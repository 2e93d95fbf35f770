<?php
$worker = new RR\Worker();
while ($req = $worker->waitRequest()) {
    $worker->respond(200, 'Hello, World!', ['Content-Type' => 'text/plain']);
}
