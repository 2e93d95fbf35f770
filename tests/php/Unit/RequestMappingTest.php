<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use Nyholm\Psr7\Factory\Psr17Factory;
use PHPUnit\Framework\TestCase;
use Psr\Http\Message\ServerRequestInterface;
use Psr\Http\Message\UploadedFileInterface;
use RR\Http\PSR7Worker;

final class RequestMappingTest extends TestCase
{
    /** @var list<string> */
    private array $tempFiles = [];

    /** @var array<array-key, mixed> PSR7Worker sets $_SERVER per request */
    private array $server;

    protected function setUp(): void
    {
        $this->server = $_SERVER;
    }

    protected function tearDown(): void
    {
        $_SERVER = $this->server;
        foreach ($this->tempFiles as $file) {
            @unlink($file);
        }
    }

    public function testNullFromTheWorkerMeansStop(): void
    {
        $worker = self::worker(new FakeWorker());

        self::assertNull($worker->waitRequest());
    }

    public function testMapsMethodUriQueryAndCookies(): void
    {
        $request = self::map([
            'method' => 'PATCH',
            'uri' => 'https://example.com:8443/a/b?x=1&y[]=2',
            'requestUri' => '/a/b?x=1&y[]=2',
            'scheme' => 'https',
            'host' => 'example.com',
            'port' => 8443,
            'path' => '/a/b',
            'queryString' => 'x=1&y[]=2',
            'query' => ['x' => '1', 'y' => ['2']],
            'cookies' => ['session' => 'abc', 'prefs' => ['lang' => 'en']],
        ]);

        self::assertSame('PATCH', $request->getMethod());
        self::assertSame('https', $request->getUri()->getScheme());
        self::assertSame('example.com', $request->getUri()->getHost());
        self::assertSame(8443, $request->getUri()->getPort());
        self::assertSame('/a/b', $request->getUri()->getPath());
        self::assertSame('x=1&y%5B%5D=2', $request->getUri()->getQuery());
        self::assertSame(['x' => '1', 'y' => ['2']], $request->getQueryParams());
        self::assertSame(['session' => 'abc', 'prefs' => ['lang' => 'en']], $request->getCookieParams());
    }

    /** @return iterable<string, array{string, string}> */
    public static function protocols(): iterable
    {
        yield 'HTTP/1.0' => ['HTTP/1.0', '1.0'];
        yield 'HTTP/1.1' => ['HTTP/1.1', '1.1'];
        yield 'HTTP/2.0' => ['HTTP/2.0', '2'];
    }

    /** @dataProvider protocols */
    public function testMapsProtocolVersion(string $protocol, string $version): void
    {
        self::assertSame($version, self::map(['protocol' => $protocol])->getProtocolVersion());
    }

    public function testKeepsEveryHeaderValue(): void
    {
        $request = self::map(['headers' => [
            'Host' => ['example.com'],
            'Accept' => ['text/html', 'application/json'],
            'X-Trace' => ['1'],
        ]]);

        self::assertSame(['text/html', 'application/json'], $request->getHeader('accept'));
        self::assertSame('text/html, application/json', $request->getHeaderLine('Accept'));
        self::assertSame(['1'], $request->getHeader('X-Trace'));
        self::assertSame(['example.com'], $request->getHeader('Host'));
    }

    public function testMapsParsedFormFieldsWithNestedKeys(): void
    {
        $fields = ['user' => ['name' => 'ann', 'roles' => ['admin', 'dev']], 'plain' => 'x'];

        $request = self::map([
            'method' => 'POST',
            'headers' => ['Content-Type' => ['application/x-www-form-urlencoded']],
            'parsed' => $fields,
            'body' => 'user%5Bname%5D=ann&user%5Broles%5D%5B%5D=admin&user%5Broles%5D%5B%5D=dev&plain=x',
        ]);

        self::assertSame($fields, $request->getParsedBody());
    }

    public function testLeavesJsonInTheBodyAndParsedBodyNull(): void
    {
        $request = self::map([
            'method' => 'POST',
            'headers' => ['Content-Type' => ['application/json']],
            'body' => '{"a":[1,2]}',
        ]);

        self::assertNull($request->getParsedBody());
        self::assertSame('{"a":[1,2]}', (string) $request->getBody());
    }

    public function testAnEmptyBodyIsAnEmptyStream(): void
    {
        self::assertSame('', (string) self::map()->getBody());
    }

    public function testMapsAttributes(): void
    {
        $request = self::map(['attributes' => ['route' => 'home', 'ids' => [1, 2]]]);

        self::assertSame(['route' => 'home', 'ids' => [1, 2]], $request->getAttributes());
    }

    public function testWrapsNestedUploadsInUploadedFiles(): void
    {
        $first = $this->tempFile('first file');
        $second = $this->tempFile("second\0binary");
        $avatar = $this->tempFile('PNG...');
        $request = self::map([
            'method' => 'POST',
            'uploads' => [
                'docs' => ['pdf' => [
                    ['name' => 'a.pdf', 'mime' => 'application/pdf', 'size' => 10, 'error' => 0, 'tmpName' => $first],
                    ['name' => 'b.bin', 'mime' => 'application/octet-stream', 'size' => 13, 'error' => 0, 'tmpName' => $second],
                ]],
                'avatar' => ['name' => 'me.png', 'mime' => 'image/png', 'size' => 6, 'error' => 0, 'tmpName' => $avatar],
                'big' => ['name' => 'huge.iso', 'mime' => 'application/x-iso9660-image', 'size' => 0, 'error' => \UPLOAD_ERR_INI_SIZE, 'tmpName' => ''],
            ],
        ]);

        $files = $request->getUploadedFiles();
        self::assertSame(['docs', 'avatar', 'big'], array_keys($files));
        self::assertCount(2, $files['docs']['pdf']);
        self::assertUpload($files['docs']['pdf'][0], 'a.pdf', 'application/pdf', 10, \UPLOAD_ERR_OK);
        self::assertSame('first file', (string) $files['docs']['pdf'][0]->getStream());
        self::assertUpload($files['docs']['pdf'][1], 'b.bin', 'application/octet-stream', 13, \UPLOAD_ERR_OK);
        self::assertSame("second\0binary", (string) $files['docs']['pdf'][1]->getStream());
        self::assertUpload($files['avatar'], 'me.png', 'image/png', 6, \UPLOAD_ERR_OK);
        self::assertSame('PNG...', (string) $files['avatar']->getStream());
        self::assertUpload($files['big'], 'huge.iso', 'application/x-iso9660-image', 0, \UPLOAD_ERR_INI_SIZE);
    }

    public function testAnUploadCanBeMoved(): void
    {
        $tmp = $this->tempFile('move me');
        $target = $this->tempFile('');
        unlink($target);
        $request = self::map(['uploads' => [
            'f' => ['name' => 'f.txt', 'mime' => 'text/plain', 'size' => 7, 'error' => 0, 'tmpName' => $tmp],
        ]]);

        $request->getUploadedFiles()['f']->moveTo($target);

        self::assertSame('move me', file_get_contents($target));
    }

    public function testFillsServerParams(): void
    {
        $before = microtime(true);
        $request = self::map([
            'remoteAddr' => '10.1.2.3',
            'remotePort' => 61234,
            'protocol' => 'HTTP/2.0',
            'method' => 'POST',
            'uri' => 'https://example.com/p?q=1&r=2',
            'requestUri' => '/p?q=1&r=2',
            'scheme' => 'https',
            'host' => 'example.com',
            'path' => '/p',
            'queryString' => 'q=1&r=2',
            'https' => true,
            'headers' => [
                'Host' => ['example.com'],
                'User-Agent' => ['test'],
                'Accept-Language' => ['en', 'de'],
                'Content-Type' => ['text/plain'],
                'Content-Length' => ['3'],
            ],
            'body' => 'abc',
        ]);
        $after = microtime(true);

        $server = $request->getServerParams();
        self::assertSame('10.1.2.3', $server['REMOTE_ADDR']);
        self::assertSame(61234, $server['REMOTE_PORT']);
        self::assertSame('on', $server['HTTPS']);
        self::assertSame('HTTP/2.0', $server['SERVER_PROTOCOL']);
        self::assertSame('POST', $server['REQUEST_METHOD']);
        self::assertSame('/p?q=1&r=2', $server['REQUEST_URI']);
        self::assertSame('q=1&r=2', $server['QUERY_STRING']);
        self::assertGreaterThanOrEqual($before, $server['REQUEST_TIME_FLOAT']);
        self::assertLessThanOrEqual($after, $server['REQUEST_TIME_FLOAT']);
        self::assertSame((int) $server['REQUEST_TIME_FLOAT'], $server['REQUEST_TIME']);
        self::assertSame('example.com', $server['HTTP_HOST']);
        self::assertSame('test', $server['HTTP_USER_AGENT']);
        self::assertSame('en, de', $server['HTTP_ACCEPT_LANGUAGE']);
        self::assertSame('text/plain', $server['CONTENT_TYPE']);
        self::assertSame('3', $server['CONTENT_LENGTH']);
        self::assertArrayNotHasKey('HTTP_CONTENT_TYPE', $server);
        // The boot-time $_SERVER is the base, and $_SERVER follows the current request.
        self::assertSame($_SERVER['argv'], $server['argv']);
        self::assertSame('10.1.2.3', $_SERVER['REMOTE_ADDR']);
    }

    public function testServerParamsDoNotLeakBetweenRequests(): void
    {
        $worker = self::worker(new FakeWorker(
            FakeWorker::request(['https' => true, 'headers' => ['X-Secret' => ['1']], 'requestUri' => '/?a=1']),
            FakeWorker::request(),
        ));
        $worker->waitRequest();

        $server = $worker->waitRequest()->getServerParams();

        self::assertArrayNotHasKey('HTTPS', $server);
        self::assertArrayNotHasKey('HTTP_X_SECRET', $server);
        self::assertSame('', $server['QUERY_STRING']);
        self::assertSame('/', $server['REQUEST_URI']);
    }

    public function testHeadersWithUnderscoresStayOutOfServerParams(): void
    {
        $request = self::map(['headers' => ['X-Real-Ip' => ['10.0.0.1'], 'X_Real_Ip' => ['6.6.6.6']]]);

        self::assertSame('10.0.0.1', $request->getServerParams()['HTTP_X_REAL_IP']);
        self::assertSame(['6.6.6.6'], $request->getHeader('X_Real_Ip'));
    }

    public function testAProxyHeaderNeverBecomesHttpProxy(): void
    {
        $request = self::map(['headers' => ['Proxy' => ['http://evil.example:8080']]]);

        self::assertArrayNotHasKey('HTTP_PROXY', $request->getServerParams());
        self::assertSame(['http://evil.example:8080'], $request->getHeader('Proxy'));
    }

    public function testGetWorkerReturnsTheWorker(): void
    {
        $fake = new FakeWorker();

        self::assertSame($fake, self::worker($fake)->getWorker());
    }

    private static function assertUpload(
        UploadedFileInterface $file,
        string $name,
        string $mime,
        int $size,
        int $error,
    ): void {
        self::assertSame($name, $file->getClientFilename());
        self::assertSame($mime, $file->getClientMediaType());
        self::assertSame($size, $file->getSize());
        self::assertSame($error, $file->getError());
    }

    /** @param array<string, mixed> $fields */
    public function testTheUriIsBuiltFromPartsNeverReparsed(): void
    {
        // As a string, '//evil.test/x' after the authority would still be a path, but a URI
        // parser given only the path would take evil.test for the host.
        $request = self::map([
            'uri' => 'http://example.com//evil.test/x?y=1',
            'requestUri' => '//evil.test/x?y=1',
            'host' => 'example.com',
            'path' => '//evil.test/x',
            'queryString' => 'y=1',
        ]);

        self::assertSame('example.com', $request->getUri()->getHost());
        self::assertSame('//evil.test/x', $request->getUri()->getPath());
        self::assertSame('y=1', $request->getUri()->getQuery());
    }

    public function testARequestThePsr7LibraryRefusesIsAnswered400AndTheLoopGoesOn(): void
    {
        $fake = new FakeWorker(
            FakeWorker::request(['port' => 70000, 'requestUri' => '/refused']),
            FakeWorker::request(['requestUri' => '/next']),
        );

        $request = self::worker($fake)->waitRequest();

        self::assertNotNull($request);
        self::assertSame('/next', $request->getServerParams()['REQUEST_URI']);
        self::assertCount(1, $fake->calls);
        [$method, $status, $body, $headers] = $fake->calls[0];
        self::assertSame(['respond', 400], [$method, $status]);
        self::assertSame(['Content-Type' => ['application/json']], $headers);
        $json = json_decode((string) $body, true, flags: JSON_THROW_ON_ERROR);
        self::assertSame('bad_request', $json['code']);
        self::assertStringContainsString('70000', $json['error']);
    }

    private static function map(array $fields = []): ServerRequestInterface
    {
        $request = self::worker(new FakeWorker(FakeWorker::request($fields)))->waitRequest();
        self::assertNotNull($request);

        return $request;
    }

    private static function worker(FakeWorker $fake): PSR7Worker
    {
        $factory = new Psr17Factory();

        return new PSR7Worker($fake, $factory, $factory, $factory);
    }

    private function tempFile(string $contents): string
    {
        $path = tempnam(sys_get_temp_dir(), 'rr-test-');
        file_put_contents($path, $contents);
        $this->tempFiles[] = $path;

        return $path;
    }
}
