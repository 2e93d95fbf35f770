<?php

/**
 * Serves an existing Nextcloud with rr, in place (see docs/nextcloud.md):
 *
 *     NEXTCLOUD_ROOT=/var/www/nextcloud php -d extension=rr.so -d apc.enable_cli=1 \
 *         examples/nextcloud/worker.php
 *
 * Configuration: examples/nextcloud/rr.yaml, unless `-d rr.config=` or RR_CONFIG names another.
 */

declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

// Nextcloud treats the SAPI name "cli" as the command line (no sessions, no trusted-domain
// checks). rr.sapi_name is read when the extension starts, so start again with it set.
if (php_sapi_name() === 'cli') {
    if (ini_get('rr.sapi_name') === false || getenv('RR_NEXTCLOUD_RESTARTED') !== false) {
        fwrite(STDERR, "this php has no rr.sapi_name setting (load an rr.so that has it), or it did not take effect\n");
        exit(1);
    }
    $cmdline = @file_get_contents('/proc/self/cmdline');
    if ($cmdline === false || !function_exists('pcntl_exec')) {
        fwrite(STDERR, "start php with -d rr.sapi_name=fpm-fcgi\n");
        exit(1);
    }
    $args = explode("\0", rtrim($cmdline, "\0"));
    array_shift($args);
    pcntl_exec(PHP_BINARY, ['-d', 'rr.sapi_name=fpm-fcgi', ...$args], getenv() + ['RR_NEXTCLOUD_RESTARTED' => '1']);
    fwrite(STDERR, "could not restart php with -d rr.sapi_name=fpm-fcgi\n");
    exit(1);
}

$root = getenv('NEXTCLOUD_ROOT');
if ($root === false || $root === '' || !is_file(rtrim($root, '/') . '/lib/base.php')) {
    fwrite(STDERR, "NEXTCLOUD_ROOT must name a Nextcloud directory (with lib/base.php), got "
        . var_export($root, true) . "\n");
    exit(1);
}
$root = rtrim((string)realpath($root), '/');

$options = [];
if ((string)ini_get('rr.config') === '' && (string)getenv('RR_CONFIG') === '') {
    $options['config'] = __DIR__ . '/rr.yaml';
}
$worker = new RR\Worker($options);
// NEXTCLOUD_PHASES=<file>: average time per phase of the request cycle, a JSON line every
// NEXTCLOUD_PHASES_EVERY (100) requests (docs/nextcloud.md, "Where the time goes").
// NEXTCLOUD_KEEP_PURE=0: rebuild in every request every service a request builds, also those
// whose construction cannot depend on the request (docs/nextcloud.md, "Services kept across
// requests"); NEXTCLOUD_PROMOTION_LOG=<file> logs which are kept and why the others are not;
// NEXTCLOUD_VERIFY_KEPT=1 (tests) checks each kept service against a fresh build per request.
// NEXTCLOUD_SEAL_PASSWORDS=0: decrypt an app password's login password in every request instead
// of remembering it sealed under the app password (docs/nextcloud.md, "App passwords").
// NEXTCLOUD_DIRECT_LOOKUPS=0: leave Nextcloud's containers as they are, throwing and catching an
// exception on the way to many services (docs/nextcloud.md, "Container lookups").
// NEXTCLOUD_STATEMENT_CACHE=0: prepare every database query again, as Nextcloud does, instead of
// keeping prepared statements (SQLite; docs/nextcloud.md, "Prepared statements").
$kernel = new RR\Nextcloud\Kernel(
    $root,
    phases: RR\Nextcloud\Phases::fromEnvironment(),
    keepPure: getenv('NEXTCLOUD_KEEP_PURE') !== '0',
    promotionLog: (string)getenv('NEXTCLOUD_PROMOTION_LOG') !== '' ? (string)getenv('NEXTCLOUD_PROMOTION_LOG') : null,
    verifyKept: getenv('NEXTCLOUD_VERIFY_KEPT') === '1',
    sealPasswords: getenv('NEXTCLOUD_SEAL_PASSWORDS') !== '0',
    directLookups: getenv('NEXTCLOUD_DIRECT_LOOKUPS') !== '0',
    statementCache: getenv('NEXTCLOUD_STATEMENT_CACHE') !== '0',
);

// A pool worker, or the template that forked workers start from (http.pool.template), boots
// before its first request. The master of a pool serves nothing and never boots; a single
// process boots at its first request. NEXTCLOUD_EAGER_BOOT=1 boots here in any case, 0 never.
$eager = getenv('NEXTCLOUD_EAGER_BOOT');
$role = RR\role();
if ($eager === '1' || ($eager !== '0' && ($role === 'worker' || $role === 'template'))) {
    $kernel->boot();
}
// The template (http.pool.template) forks every worker from this booted process: nothing it
// connected to while booting may be shared by them (rr refuses to fork otherwise).
$worker->beforeFork(RR\Nextcloud\ForkSafety::closeConnections(...));

// After exit()/die() inside Nextcloud the request was cut short wherever it was, and scripts not
// run in place by RR\Nextcloud (cron.php, the updater, ...) may leave anything behind: the worker
// is replaced after the answer (RR\Worker::retire(); NEXTCLOUD_RETIRE_ON_EXIT=0 keeps it after
// exit()). A single process cannot be replaced: retire() says so in the log once.
$retireOnExit = getenv('NEXTCLOUD_RETIRE_ON_EXIT') !== '0';
while ($worker->handle($kernel)) {
    if ($kernel->broken() !== null) {
        // Never serve again with state that could not be reset: end the process (a pool
        // replaces the worker; a single process must be restarted by its supervisor).
        fwrite(STDERR, 'rr nextcloud worker: ' . $kernel->broken() . "\n");
        exit(1);
    }
    if ($kernel->untrusted() || ($retireOnExit && $kernel->exited())) {
        $worker->retire();
    }
}
