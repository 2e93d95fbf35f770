<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/** The PSR-7 worker with nyholm/psr7 under the real extension, over real HTTP. */
final class PSR7WorkerTest extends TestCase
{
    private const FIXTURE = 'psr7_worker.php';

    private static ?Server $server = null;

    public static function tearDownAfterClass(): void
    {
        self::$server?->stop();
        self::$server = null;
    }

    protected function setUp(): void
    {
        if (!is_file(Server::extension())) {
            self::markTestSkipped(
                'no built extension at ' . Server::extension() . ': run `cargo build --release` or set RR_EXT',
            );
        }
        self::$server ??= Server::start(self::FIXTURE);
    }

    public function testALargeBodyIsAStreamOnTheSpoolFileNotAString(): void
    {
        $body = str_repeat('0123456789abcdef', 4 << 16); // 4 MiB, past http.body_buffer_size
        $response = self::$server->request('PUT', '/body', ['Content-Type: application/octet-stream'], $body);

        self::assertSame(200, $response['status'], $response['body']);
        $got = json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR);
        self::assertSame(md5($body), $got['md5']);
        self::assertSame(strlen($body), $got['size']);
        self::assertIsString($got['uri']);
        self::assertStringContainsString('rr-body-', $got['uri'], 'a stream on the spooled file');
        self::assertLessThan(strlen($body), $got['peak'], 'the body was never held whole by PHP');
    }

    public function testASmallBodyIsStillAStringStream(): void
    {
        $response = self::$server->request('PUT', '/body', ['Content-Type: application/json'], '{"a":1}');

        $got = json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR);
        self::assertSame(md5('{"a":1}'), $got['md5']);
        self::assertSame(7, $got['size']);
    }

    public function testGetMapsUriQueryHeadersCookiesAndServerParams(): void
    {
        $response = self::$server->request('GET', '/echo?a=1&list[]=x&list[]=y&nested[k]=v', [
            'Cookie: session=abc; theme=dark',
            'X-Multi: one',
            'X-Multi: two',
            'User-Agent: rr-feature-test',
        ]);

        self::assertSame(200, $response['status']);
        self::assertSame(['application/json'], $response['headers']['content-type']);
        $echo = json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR);
        self::assertSame('GET', $echo['method']);
        self::assertSame('1.1', $echo['protocol']);
        self::assertSame('http://' . self::$server->address . '/echo?a=1&list%5B%5D=x&list%5B%5D=y&nested%5Bk%5D=v', $echo['uri']);
        self::assertSame(['a' => '1', 'list' => ['x', 'y'], 'nested' => ['k' => 'v']], $echo['query']);
        self::assertSame(['session' => 'abc', 'theme' => 'dark'], $echo['cookies']);
        self::assertSame(['one', 'two'], $echo['headers']['X-Multi']);
        self::assertSame(['rr-feature-test'], $echo['headers']['User-Agent']);
        self::assertNull($echo['parsed']);
        self::assertSame([], $echo['uploads']);
        $server = $echo['server'];
        self::assertSame('127.0.0.1', $server['REMOTE_ADDR']);
        self::assertIsInt($server['REMOTE_PORT']);
        self::assertSame('GET', $server['REQUEST_METHOD']);
        self::assertSame('/echo?a=1&list[]=x&list[]=y&nested[k]=v', $server['REQUEST_URI']);
        self::assertSame('a=1&list[]=x&list[]=y&nested[k]=v', $server['QUERY_STRING']);
        self::assertSame('HTTP/1.1', $server['SERVER_PROTOCOL']);
        self::assertSame(self::$server->address, $server['HTTP_HOST']);
        self::assertEqualsWithDelta(time(), $server['REQUEST_TIME'], 5);
        self::assertArrayNotHasKey('HTTPS', $server);
    }

    public function testPostFormBecomesTheParsedBody(): void
    {
        $response = self::$server->request('POST', '/echo', [
            'Content-Type: application/x-www-form-urlencoded',
        ], 'name=ann&roles%5B%5D=admin&roles%5B%5D=dev&address%5Bcity%5D=Berlin');

        $echo = json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR);
        self::assertSame('POST', $echo['method']);
        self::assertSame(
            ['name' => 'ann', 'roles' => ['admin', 'dev'], 'address' => ['city' => 'Berlin']],
            $echo['parsed'],
        );
        self::assertSame('application/x-www-form-urlencoded', $echo['server']['CONTENT_TYPE']);
    }

    public function testJsonStaysInTheBody(): void
    {
        $response = self::$server->request('PUT', '/echo', ['Content-Type: application/json'], '{"a":[1,2]}');

        $echo = json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR);
        self::assertNull($echo['parsed']);
        self::assertSame('{"a":[1,2]}', $echo['body']);
    }

    public function testMultipartUploadsBecomeUploadedFiles(): void
    {
        $binary = random_bytes(100_000);
        $boundary = 'rr-boundary-' . bin2hex(random_bytes(8));
        $parts = [
            ['title', null, null, 'hello'],
            ['meta[tags][]', null, null, 'a'],
            ['meta[tags][]', null, null, 'b'],
            ['docs[]', 'one.txt', 'text/plain', 'first'],
            ['docs[]', 'two.bin', 'application/octet-stream', $binary],
            ['avatar', 'me.png', 'image/png', 'PNG!'],
        ];
        $body = '';
        foreach ($parts as [$name, $filename, $type, $content]) {
            $body .= "--$boundary\r\nContent-Disposition: form-data; name=\"$name\""
                . ($filename !== null ? "; filename=\"$filename\"\r\nContent-Type: $type" : '')
                . "\r\n\r\n$content\r\n";
        }
        $body .= "--$boundary--\r\n";

        $response = self::$server->request('POST', '/echo', ["Content-Type: multipart/form-data; boundary=$boundary"], $body);

        self::assertSame(200, $response['status'], $response['body']);
        $echo = json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR);
        self::assertSame(['title' => 'hello', 'meta' => ['tags' => ['a', 'b']]], $echo['parsed']);
        self::assertSame([
            'docs' => [
                ['name' => 'one.txt', 'mime' => 'text/plain', 'size' => 5, 'error' => 0, 'sha1' => sha1('first')],
                ['name' => 'two.bin', 'mime' => 'application/octet-stream', 'size' => 100_000, 'error' => 0, 'sha1' => sha1($binary)],
            ],
            'avatar' => ['name' => 'me.png', 'mime' => 'image/png', 'size' => 4, 'error' => 0, 'sha1' => sha1('PNG!')],
        ], $echo['uploads']);
    }

    public function testALargeBodyIsStreamedWithoutHoldingItInMemory(): void
    {
        $size = 20 * 1024 * 1024;

        $response = self::$server->request('GET', "/stream?size=$size");

        self::assertSame(200, $response['status']);
        // Streamed, so chunked: PHP's http wrapper decodes it and drops Transfer-Encoding.
        self::assertArrayNotHasKey('content-length', $response['headers']);
        self::assertSame($size, \strlen($response['body']));
        self::assertSame($response['headers']['x-sha256'][0], hash('sha256', $response['body']));
        $memory = json_decode(self::$server->request('GET', '/memory')['body'], true, 512, \JSON_THROW_ON_ERROR);
        self::assertLessThan(8 * 1024 * 1024, $memory['peak'], 'peak memory of the worker');
    }

    public function testAFileBodyIsSentFromDiskByRr(): void
    {
        $file = (string) file_get_contents(\dirname(__DIR__) . '/fixtures/psr7_asset.txt');

        $whole = self::$server->request('GET', '/file');
        $range = self::$server->request('GET', '/file', ['Range: bytes=0-1']);

        self::assertSame(200, $whole['status']);
        self::assertSame($file, $whole['body']);
        self::assertSame(['text/plain'], $whole['headers']['content-type']);
        self::assertSame([(string) \strlen($file)], $whole['headers']['content-length']);
        // Ranges are served only by sendFile, so a 206 shows the body went that way.
        self::assertSame(206, $range['status']);
        self::assertSame(substr($file, 0, 2), $range['body']);
    }

    public function testEverySetCookieSurvives(): void
    {
        $response = self::$server->request('GET', '/cookies');

        self::assertSame(['a=1; Path=/', 'b=2; HttpOnly', 'c=3; Secure'], $response['headers']['set-cookie']);
        self::assertSame('cookies', $response['body']);
    }

    public function testAnExceptionGivesA500AndTheWorkerGoesOn(): void
    {
        self::assertSame(500, self::$server->request('GET', '/throw')['status']);
        self::assertSame(404, self::$server->request('GET', '/missing')['status']);
    }

    public function testABodyThatStopsGivingBytesBeforeItsEndIsCutOff(): void
    {
        $cut = self::$server->transfer('/stalls');

        self::assertSame(200, $cut['status']);
        // Ending the answer there would pass the 192 KiB read so far for the whole body.
        self::assertFalse($cut['complete'], 'the client must not take the part sent for the whole body');
        self::assertSame(404, self::$server->request('GET', '/missing')['status']);
    }

    public function testSigtermEndsTheLoopAndPhpExitsZero(): void
    {
        $server = Server::start(self::FIXTURE);
        self::assertSame(200, $server->request('GET', '/cookies')['status']);

        self::assertSame(0, $server->stop());
    }
}
