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
        fwrite(STDERR, "rr is not loaded (php -d extension=rr.so), or its rr.sapi_name did not take effect\n");
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
// The NEXTCLOUD_* switches (speed-ups off, checks and logs on, boot and retire policy): read in
// one place, RR\Nextcloud\Options::fromEnvironment(); see docs/nextcloud.md.
$nextcloud = RR\Nextcloud\Options::fromEnvironment();
$kernel = new RR\Nextcloud\Kernel($root, $nextcloud);

// Every process that serves boots before its first request: a single process, a pool worker,
// or the template that forked workers start from (http.pool.template). The master of a pool
// serves nothing and never boots. Booted inside a request (NEXTCLOUD_EAGER_BOOT=0), what
// Nextcloud's boot sets for the whole process (display_errors, max_execution_time, its error
// handlers, the timezone) would be put back after that request, as handle() puts back what any
// request changes.
$role = RR\role();
if ($nextcloud->eagerBoot ?? ($role !== 'master')) {
    $kernel->boot();
}
// The template (http.pool.template) forks every worker from this booted process: nothing it
// connected to while booting may be shared by them (rr refuses to fork otherwise).
$worker->beforeFork(RR\Nextcloud\ForkSafety::closeConnections(...));

// After exit()/die() inside Nextcloud the request was cut short wherever it was, and scripts not
// run in place by RR\Nextcloud (cron.php, the updater, ...) may leave anything behind: the worker
// is replaced after the answer (RR\Worker::retire(); NEXTCLOUD_RETIRE_ON_EXIT=0 keeps it after
// exit()). A single process cannot be replaced: retire() says so in the log once.
// An app enabled or disabled while the workers run (occ app:disable, the Apps page), an
// upgrade (occ upgrade, occ app:update) or a config.php change (a new database password, cache
// server, ...): every worker booted with the apps, the code and the connections of its boot, so
// the pool reloads and its new workers boot what is installed now (one reload however many
// workers ask; RR\Worker::reload()). Asked once per worker.
$reloadAsked = false;
while ($worker->handle($kernel)) {
    if ($kernel->broken() !== null) {
        // Never serve again with state that could not be reset: end the process (a pool
        // replaces the worker; a single process must be restarted by its supervisor).
        fwrite(STDERR, 'rr nextcloud worker: ' . $kernel->broken() . "\n");
        exit(1);
    }
    if ($kernel->untrusted() || ($nextcloud->retireOnExit && $kernel->exited())) {
        $worker->retire();
    }
    if (!$reloadAsked && ($change = $kernel->installChanged()) !== null) {
        $reloadAsked = true;
        fwrite(STDERR, "RR\\Nextcloud: what this worker booted with changed ($change): asking the pool for a reload\n");
        $worker->reload();
    }
}
