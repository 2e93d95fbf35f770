<?php
// Row f: hello world in superglobal mode (RR\Worker::handle), the php-fpm-era way.
$worker = new RR\Worker();
$app = function () {
    header('Content-Type: text/plain');
    echo 'Hello, World!';
};
while ($worker->handle($app)) {
}
