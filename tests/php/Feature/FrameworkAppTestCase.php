<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/**
 * The same small app in each framework (tests/php/fixtures/<framework>/), built on Debian's
 * packages and served by rr over real HTTP: routes and a 404, two users' sessions alternating
 * on one worker, an upload, a streamed and a file response, an exception answered 500 with the
 * worker still serving.
 */
abstract class FrameworkAppTestCase extends TestCase
{
    protected static ?Server $server = null;

    private static string $var = '';

    /** Starts the app with its storage in `$var`. */
    abstract protected static function startApp(string $var): Server;

    /**
     * The environment the app starts with besides RR_TEST_VAR: none for one process, the
     * config of a pool of one worker for the pool variants.
     *
     * @return array<string, string>
     */
    protected static function env(string $var): array
    {
        return [];
    }

    /**
     * A pool of one worker (`http.pool.num_workers: 1`): the master takes the connections and
     * the same worker process serves every request.
     *
     * @return array<string, string>
     */
    protected static function onePoolWorker(string $var): array
    {
        file_put_contents("$var/rr.yaml", "http:\n  pool:\n    num_workers: 1\n");

        return ['RR_CONFIG' => "$var/rr.yaml"];
    }

    /** Whether streamed responses leave before the whole body is known (chunked). */
    abstract protected static function streamsChunked(): bool;

    public static function tearDownAfterClass(): void
    {
        self::$server?->stop();
        self::$server = null;
        if (self::$var !== '' && is_dir(self::$var)) {
            exec('rm -rf ' . escapeshellarg(self::$var));
        }
    }

    protected function setUp(): void
    {
        if (!is_file(Server::extension())) {
            self::markTestSkipped('no built extension at ' . Server::extension());
        }
        if (self::$server === null) {
            self::$var = sys_get_temp_dir() . '/rr-framework-' . bin2hex(random_bytes(6));
            mkdir(self::$var, 0700, true);
            self::$server = static::startApp(self::$var);
        }
    }

    public function testRoutesAnswerAndAnUnknownPathIs404(): void
    {
        $hello = self::$server->request('GET', '/hello/world');
        $other = self::$server->request('GET', '/hello/rr');
        $missing = self::$server->request('GET', '/no/such/route');

        self::assertSame(200, $hello['status'], $hello['body'] . self::$server->log());
        self::assertSame('Hello world', $hello['body']);
        self::assertSame('Hello rr', $other['body']);
        self::assertStringStartsWith('text/plain', $hello['headers']['content-type'][0]);
        self::assertSame(404, $missing['status']);
    }

    public function testTwoUsersSessionsAlternateOnOneWorkerOverTwentyRounds(): void
    {
        $alice = new Browser(self::$server);
        $bob = new Browser(self::$server);
        $pids = [];
        for ($round = 1; $round <= 20; $round++) {
            foreach (['alice' => $alice, 'bob' => $bob] as $name => $browser) {
                $answer = $browser->json("/session?user=$name");
                self::assertSame($name, $answer['user'], "round $round");
                self::assertSame($round, $answer['count'], "$name, round $round");
                $pids[$answer['pid']] = true;
            }
        }
        self::assertCount(1, $pids, 'one worker served both users');
        // Without its cookie, a client gets a new session, not the last user's.
        $stranger = (new Browser(self::$server))->json('/session');
        self::assertNull($stranger['user']);
        self::assertSame(1, $stranger['count']);
    }

    public function testAnUploadReachesTheAppAndCanBeMoved(): void
    {
        $content = random_bytes(200_000);
        $boundary = 'rr-' . bin2hex(random_bytes(8));
        $body = "--$boundary\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nreport\r\n"
            . "--$boundary\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"report.bin\"\r\n"
            . "Content-Type: application/octet-stream\r\n\r\n$content\r\n--$boundary--\r\n";

        $response = self::$server->request('POST', '/upload', ["Content-Type: multipart/form-data; boundary=$boundary"], $body);

        self::assertSame(200, $response['status'], $response['body'] . self::$server->log());
        self::assertSame([
            'name' => 'report.bin',
            'title' => 'report',
            'size' => 200_000,
            'sha1' => sha1($content),
            'movedSha1' => sha1($content),
        ], json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR));
    }

    public function testAStreamedResponseArrivesWhole(): void
    {
        $response = self::$server->request('GET', '/stream?lines=500');

        self::assertSame(200, $response['status'], $response['body']);
        $expected = '';
        for ($i = 1; $i <= 500; $i++) {
            $expected .= "line $i\n";
        }
        self::assertSame($expected, $response['body']);
        if (static::streamsChunked()) {
            // Sent as the callback wrote it, so without a length known up front.
            self::assertArrayNotHasKey('content-length', $response['headers']);
        }
    }

    public function testAStreamedResponseThatFailsHalfWayIsCutOffAndTheWorkerGoesOn(): void
    {
        $pid = static fn (array $r): int => json_decode($r['body'], true, 512, \JSON_THROW_ON_ERROR)['pid'];
        $before = $pid(self::$server->request('GET', '/session'));

        // Past the first 64 KiB, so the head and some lines are out when the body fails.
        $cut = self::$server->transfer('/stream?lines=20000&fail=15000');

        self::assertSame(200, $cut['status']);
        self::assertFalse($cut['complete'], 'the client must not take the lines sent for the whole body');
        self::assertStringStartsWith("line 1\nline 2\n", $cut['body']);
        self::assertStringNotContainsString('line 15000', $cut['body']);
        // Failing before its first byte, it is a 500 like any other failed request.
        self::assertSame(500, self::$server->request('GET', '/stream?lines=3&fail=1')['status']);
        self::assertSame($before, $pid(self::$server->request('GET', '/session')), 'the same worker');
    }

    public function testAFileResponseIsServedFromDiskByRr(): void
    {
        $file = (string) file_get_contents(\dirname(__DIR__) . '/fixtures/psr7_asset.txt');

        $whole = self::$server->request('GET', '/file');
        $range = self::$server->request('GET', '/file', ['Range: bytes=3-7']);

        self::assertSame(200, $whole['status'], $whole['body']);
        self::assertSame($file, $whole['body']);
        self::assertSame([(string) \strlen($file)], $whole['headers']['content-length']);
        // rr's sendFile() answers ranges: a 206 with just those bytes shows the file went there.
        self::assertSame(206, $range['status']);
        self::assertSame(substr($file, 3, 5), $range['body']);
        self::assertSame(['bytes 3-7/' . \strlen($file)], $range['headers']['content-range']);
    }

    public function testAnExceptionIsA500AndTheWorkerGoesOn(): void
    {
        $before = self::$server->request('GET', '/session');
        $failed = self::$server->request('GET', '/throw');
        $after = self::$server->request('GET', '/hello/again');

        self::assertSame(500, $failed['status']);
        self::assertStringNotContainsString('boom', $failed['body'], 'no details leak to the client');
        self::assertSame(200, $after['status']);
        self::assertSame('Hello again', $after['body']);
        $pid = static fn (array $r): int => json_decode($r['body'], true, 512, \JSON_THROW_ON_ERROR)['pid'];
        self::assertSame($pid($before), $pid(self::$server->request('GET', '/session')), 'the same worker');
    }
}
