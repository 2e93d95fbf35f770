<?php
// A ~100 KB JSON answer, built once; rr compresses it per request (bench/compress/run).
$rows = [];
for ($i = 0; $i < 1200; $i++) {
    $rows[] = ['id' => $i, 'name' => "user $i", 'email' => "user$i@example.com", 'active' => $i % 3 === 0, 'score' => $i * 7 % 101];
}
$json = json_encode($rows);
file_put_contents(getenv('JSON_OUT') ?: '/dev/null', $json);
$worker = new RR\Worker();
while ($req = $worker->waitRequest()) {
    $worker->respond(200, $json, ['Content-Type' => 'application/json']);
}
