<?php
// The velox benchmark's worker: /build?tag=T hands a build to Rust; /plain answers at once;
// /stats returns how long each hand-off held the worker, from the velox_build() call to the
// next waitRequest(), in microseconds (and forgets them).
$worker = new RR\Worker();
$held = [];
$since = null;
while (true) {
    if ($since !== null) {
        $held[] = (hrtime(true) - $since) / 1000;
        $since = null;
    }
    $req = $worker->waitRequest();
    if ($req === null) {
        break;
    }
    $path = parse_url($req->uri, PHP_URL_PATH);
    if ($path === '/build') {
        $since = hrtime(true);
        RR\velox_build([
            'rr_version' => 'v2025.1.2',
            'target_platform' => ['os' => 'linux', 'arch' => 'amd64'],
            'plugins' => [['module_name' => 'github.com/roadrunner-server/http/v5', 'tag' => $req->query['tag'] ?? 'v5.2.7']],
        ]);
    } elseif ($path === '/stats') {
        $worker->respond(200, json_encode($held), ['Content-Type' => 'application/json']);
        $held = [];
    } else {
        $worker->respond(200, 'plain', ['Content-Type' => 'text/plain']);
    }
}
