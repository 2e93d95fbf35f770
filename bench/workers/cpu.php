<?php
// Burns about 1 ms of CPU per request: the pool rows compare 1 and 2 workers.
$worker = new RR\Worker();
while ($req = $worker->waitRequest()) {
    $until = hrtime(true) + 1_000_000;
    $x = 0;
    while (hrtime(true) < $until) {
        $x = ($x * 31 + 7) % 1_000_003;
    }
    $worker->respond(200, "burned $x", ['Content-Type' => 'text/plain']);
}
