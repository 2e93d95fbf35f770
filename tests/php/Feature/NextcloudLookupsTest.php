<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/**
 * RR\Nextcloud\Lookups on the Nextcloud install named by RR_NEXTCLOUD_ROOT (32.0.1, whose
 * container sources Lookups knows), in a php process of its own with the built extension
 * (fixtures/lookups.php): once the server and every app container are turned, each of ~7,700
 * questions (every app container asked for every OCP service of the server, for other apps'
 * services, for names nobody has; the server asked for every app service) gets the same
 * answer as before: the same shared object, an object of the same class, or the same exception.
 */
final class NextcloudLookupsTest extends TestCase
{
    public function testTurnedContainersGiveTheSameAnswers(): void
    {
        $root = (string)getenv('RR_NEXTCLOUD_ROOT');
        if ($root === '' || !is_file($root . '/lib/base.php') || !is_file($root . '/config/config.php')) {
            self::markTestSkipped('set RR_NEXTCLOUD_ROOT to an installed Nextcloud (tests/nextcloud/install.sh)');
        }
        $ext = Server::extension();
        if (!is_file($ext)) {
            self::markTestSkipped("no extension at {$ext} (build it, or set RR_EXT)");
        }
        $command = [
            PHP_BINARY, '-d', 'apc.enable_cli=1', '-d', 'rr.sapi_name=fpm-fcgi', '-d', "extension={$ext}",
            __DIR__ . '/../fixtures/lookups.php', $root,
        ];
        $process = proc_open($command, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, sys_get_temp_dir());
        self::assertIsResource($process);
        $stdout = (string)stream_get_contents($pipes[1]);
        $stderr = (string)stream_get_contents($pipes[2]);
        $status = proc_close($process);
        self::assertSame(0, $status, "fixture failed: $stderr $stdout");
        $out = json_decode(trim($stdout), true);
        self::assertIsArray($out, "not JSON: $stdout $stderr");

        self::assertSame($out['apps'] + 1, $out['turned'], 'the server and every app container are turned (Lookups knows this Nextcloud\'s sources)');
        self::assertSame('RR\\Nextcloud\\LookupServer', $out['server class']);
        self::assertGreaterThan(5000, $out['questions']);
        self::assertSame([], $out['differences'], "{$out['difference count']} answers changed");
    }
}
