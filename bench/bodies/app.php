<?php
// The same php-fpm-style code for every server: nginx + php-fpm runs it as the script, rr runs it
// under RR\Worker::handle() (worker.php).
//   PUT  /upload         reads php://input in 1 MB reads into a hash, answers size and md5
//   GET  /download?mb=N  echoes N MB in 1 MB chunks with flush() after each
//   GET  /hello          hello world
// PHP_TIME_LOG (env): a file each download appends its PHP wall time to (ms), for the slow
// readers: shows PHP was done with them while their clients had read nothing.
declare(strict_types=1);

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
if ($path === '/upload') {
    $in = fopen('php://input', 'rb');
    $hash = hash_init('md5');
    $size = 0;
    while (!feof($in)) {
        $chunk = fread($in, 1 << 20);
        if ($chunk === false) {
            break;
        }
        $size += strlen($chunk);
        hash_update($hash, $chunk);
    }
    header('Content-Type: application/json');
    echo json_encode(['size' => $size, 'md5' => hash_final($hash)]);
    return;
}
if ($path === '/download') {
    $started = hrtime(true);
    $mb = (int) ($_GET['mb'] ?? 1);
    $chunk = str_repeat('x', 1 << 20);
    header('Content-Type: application/octet-stream');
    header('Content-Length: ' . ($mb << 20));
    for ($i = 0; $i < $mb; $i++) {
        echo $chunk;
        flush();
    }
    $log = getenv('PHP_TIME_LOG');
    if ($log) {
        file_put_contents($log, sprintf("%.3f\n", (hrtime(true) - $started) / 1e6), FILE_APPEND);
    }
    return;
}
header('Content-Type: text/plain');
echo 'Hello, World!';
