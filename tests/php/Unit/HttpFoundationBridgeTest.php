<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use PHPUnit\Framework\TestCase;
use RR\HttpFoundation\RequestFactory;
use RR\HttpFoundation\ResponseSender;
use Symfony\Component\HttpFoundation\BinaryFileResponse;
use Symfony\Component\HttpFoundation\Cookie;
use Symfony\Component\HttpFoundation\File\UploadedFile;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpFoundation\StreamedResponse;

/** The Symfony HttpFoundation bridge (used by the Symfony runtime and the Laravel worker) with a fake worker. */
final class HttpFoundationBridgeTest extends TestCase
{
    private const DEBIAN_AUTOLOAD = '/usr/share/php/Symfony/Component/HttpFoundation/autoload.php';

    /** @var list<string> */
    private array $tempFiles = [];

    /** @var array<array-key, mixed> RequestFactory replaces $_SERVER, as a worker must */
    private array $server = [];

    protected function setUp(): void
    {
        $this->server = $_SERVER;
        if (!class_exists(Request::class)) {
            if (!is_file(self::DEBIAN_AUTOLOAD)) {
                self::markTestSkipped('symfony/http-foundation is not installed (php-symfony-http-foundation)');
            }
            require_once self::DEBIAN_AUTOLOAD;
        }
    }

    protected function tearDown(): void
    {
        $_SERVER = $this->server;
        foreach ($this->tempFiles as $file) {
            @unlink($file);
        }
    }

    private function tempFile(string $content): string
    {
        $file = (string) tempnam(sys_get_temp_dir(), 'rr-bridge-');
        file_put_contents($file, $content);
        $this->tempFiles[] = $file;

        return $file;
    }

    public function testARequestCarriesQueryFormCookiesBodyAndServerParams(): void
    {
        $factory = new RequestFactory(['SCRIPT_FILENAME' => 'public/index.php', 'argv' => ['x'], 'APP_ENV' => 'prod']);

        $request = $factory->create(FakeWorker::request([
            'method' => 'POST',
            'uri' => 'https://example.test/path/x?a=1',
            'requestUri' => '/path/x?a=1',
            'queryString' => 'a=1',
            'https' => true,
            'headers' => ['Host' => ['example.test'], 'Content-Type' => ['application/x-www-form-urlencoded'], 'X-Many' => ['1', '2']],
            'query' => ['a' => '1'],
            'parsed' => ['name' => 'ann', 'list' => ['x', 'y']],
            'cookies' => ['sid' => 'abc'],
            'body' => 'name=ann&list[]=x&list[]=y',
        ]));

        self::assertSame('POST', $request->getMethod());
        self::assertSame('/path/x', $request->getPathInfo());
        self::assertSame('https://example.test/path/x?a=1', $request->getUri());
        self::assertTrue($request->isSecure());
        self::assertSame('1', $request->query->get('a'));
        self::assertSame(['name' => 'ann', 'list' => ['x', 'y']], $request->request->all());
        self::assertSame('abc', $request->cookies->get('sid'));
        self::assertSame('name=ann&list[]=x&list[]=y', $request->getContent());
        self::assertSame('1, 2', $request->headers->get('X-Many'));
        self::assertSame('prod', $request->server->get('APP_ENV'));
        self::assertSame('/index.php', $request->server->get('SCRIPT_NAME'));
        self::assertFalse($request->server->has('argv'));
        self::assertSame($request->server->all(), $_SERVER, 'code reading $_SERVER sees the request');
    }

    public function testUploadsAreValidUploadedFilesOfTheGivenClassThatMoveCanRename(): void
    {
        $tmp = $this->tempFile('content');
        $class = (new class ('/dev/null', 'x', null, \UPLOAD_ERR_NO_FILE, true) extends UploadedFile {
        })::class;
        $factory = new RequestFactory([], $class);

        $request = $factory->create(FakeWorker::request(['uploads' => [
            'doc' => ['name' => 'a.txt', 'mime' => 'text/plain', 'size' => 7, 'error' => 0, 'tmpName' => $tmp],
            'more' => [['name' => '', 'mime' => '', 'size' => 0, 'error' => \UPLOAD_ERR_NO_FILE, 'tmpName' => '']],
            'one' => ['name' => '', 'mime' => '', 'size' => 0, 'error' => \UPLOAD_ERR_NO_FILE, 'tmpName' => ''],
        ]]));

        $doc = $request->files->get('doc');
        self::assertInstanceOf($class, $doc);
        self::assertTrue($doc->isValid(), 'rr temp files are not PHP uploads: test mode');
        self::assertSame('a.txt', $doc->getClientOriginalName());
        $moved = $doc->move(sys_get_temp_dir(), basename($tmp) . '.moved');
        $this->tempFiles[] = $moved->getPathname();
        self::assertSame('content', file_get_contents($moved->getPathname()));
        // Empty file fields, as Symfony's FileBag makes them of php-fpm's $_FILES.
        self::assertSame([], $request->files->get('more'));
        self::assertTrue($request->files->has('one'));
        self::assertNull($request->files->get('one'));
    }

    public function testAPlainResponseGoesInOneCallWithItsCookies(): void
    {
        $fake = new FakeWorker();
        $response = new Response('hello', 201, ['Content-Type' => 'text/plain', 'X-A' => ['1', '2']]);
        $response->headers->setCookie(Cookie::create('a', '1'));
        $response->headers->setCookie(Cookie::create('b', '2'));

        (new ResponseSender($fake))->send($response);

        self::assertCount(1, $fake->calls);
        [$method, $status, $body, $headers, $end] = $fake->calls[0];
        self::assertSame(['respond', 201, 'hello', true], [$method, $status, $body, $end]);
        self::assertSame(['text/plain'], $headers['Content-Type']);
        self::assertSame(['1', '2'], $headers['X-A']);
        self::assertSame([(string) Cookie::create('a', '1'), (string) Cookie::create('b', '2')], $headers['Set-Cookie']);
    }

    public function testAFileResponseGoesToSendFileAndRrAnswersRangesItself(): void
    {
        $fake = new FakeWorker();
        $file = $this->tempFile('0123456789');
        $response = new BinaryFileResponse($file, 200, ['Content-Type' => 'text/plain']);
        $request = Request::create('/f', 'GET', [], [], [], ['HTTP_RANGE' => 'bytes=2-3']);
        $response->prepare($request);
        self::assertSame(206, $response->getStatusCode(), 'Symfony prepared its own range');

        (new ResponseSender($fake))->send($response);

        self::assertCount(1, $fake->calls);
        [$method, $path, $status, $headers] = $fake->calls[0];
        self::assertSame(['sendFile', realpath($file), 200], [$method, $path, $status]);
        $names = array_map('strtolower', array_keys($headers));
        self::assertNotContains('content-length', $names);
        self::assertNotContains('content-range', $names);
        self::assertStringStartsWith('text/plain', $headers['Content-Type'][0]);
    }

    public function testAFileToDeleteAfterSendingIsSentFromMemoryAndDeleted(): void
    {
        $fake = new FakeWorker();
        $file = $this->tempFile('gone soon');
        $response = (new BinaryFileResponse($file))->deleteFileAfterSend();

        (new ResponseSender($fake))->send($response);

        self::assertSame('respond', $fake->calls[0][0]);
        self::assertSame('gone soon', $fake->calls[0][2]);
        self::assertFileDoesNotExist($file);
    }

    public function testAStreamedResponseGoesOutChunkByChunkWithTheHeadFirst(): void
    {
        $fake = new FakeWorker();
        $big = str_repeat('x', ResponseSender::CHUNK_SIZE);
        $response = new StreamedResponse(static function () use ($big): void {
            echo 'first';
            ob_flush();
            echo $big;
            echo 'tail';
        }, 200, ['Content-Type' => 'text/plain']);

        (new ResponseSender($fake))->send($response);

        $calls = $fake->calls;
        self::assertSame(['respond', 200, 'first'], \array_slice($calls[0], 0, 3));
        self::assertSame(['text/plain'], $calls[0][3]['Content-Type']);
        self::assertFalse($calls[0][4]);
        $rest = \array_slice($calls, 1, -1);
        foreach ($rest as $call) {
            self::assertNull($call[3], 'the head goes with the first chunk only');
            self::assertFalse($call[4]);
        }
        self::assertSame($big . 'tail', implode('', array_column($rest, 2)));
        self::assertSame(['respond', 200, '', null, true], end($calls));
    }

    public function testAStreamThatFailsHalfWayIsNotEndedAndTheErrorRethrown(): void
    {
        $fake = new FakeWorker();
        $response = new StreamedResponse(static function (): void {
            echo 'partial';
            ob_flush();
            throw new \RuntimeException('callback failed');
        });
        $level = ob_get_level();

        try {
            (new ResponseSender($fake))->send($response);
            self::fail('the error is rethrown');
        } catch (\RuntimeException $e) {
            self::assertSame('callback failed', $e->getMessage());
        }

        self::assertSame($level, ob_get_level(), 'no output buffer left open');
        self::assertSame('partial', $fake->calls[0][2]);
        // Ending it would make the part sent look whole; the caller's error() cuts it off.
        self::assertCount(1, $fake->calls);
        self::assertFalse($fake->calls[0][4], 'the stream was not ended');
    }
}
