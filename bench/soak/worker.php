<?php
// bench/soak's worker: hello, slow and echo requests, each answered with the worker's pid;
// a broken deploy when the file named by RR_SOAK_BROKEN exists.
$broken = getenv('RR_SOAK_BROKEN');
if (getenv('RR_POOL_FD') !== false && $broken && file_exists($broken)) {
    require $broken;
}
$worker = new RR\Worker();
while ($req = $worker->waitRequest()) {
    parse_str((string) parse_url($req->uri, PHP_URL_QUERY), $q);
    if (isset($q['ms'])) {
        usleep((int) $q['ms'] * 1000);
    }
    $worker->respond(200, getmypid() . ' ' . strlen($req->body));
}
