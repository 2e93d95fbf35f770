<?php
// rr: app.php under RR\Worker::handle(), as php-fpm would run it.
$worker = new RR\Worker();
$app = static function (): void {
    require __DIR__ . '/app.php';
};
while ($worker->handle($app)) {
}
