<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use Nyholm\Psr7\Factory\Psr17Factory;
use Nyholm\Psr7\Response;
use Nyholm\Psr7\Stream;
use PHPUnit\Framework\TestCase;
use RR\Http\PSR7Worker;

final class ResponseMappingTest extends TestCase
{
    private FakeWorker $fake;
    private PSR7Worker $worker;
    private Psr17Factory $factory;
    /** @var list<string> */
    private array $tempFiles = [];

    protected function setUp(): void
    {
        $this->fake = new FakeWorker();
        $this->factory = new Psr17Factory();
        $this->worker = new PSR7Worker($this->fake, $this->factory, $this->factory, $this->factory);
    }

    protected function tearDown(): void
    {
        foreach ($this->tempFiles as $file) {
            @unlink($file);
        }
    }

    public function testASmallBodyGoesInOneCallWithEveryHeaderValue(): void
    {
        $response = (new Response(201, ['Content-Type' => 'text/plain']))
            ->withAddedHeader('Set-Cookie', 'a=1; Path=/')
            ->withAddedHeader('Set-Cookie', 'b=2; HttpOnly');
        $response->getBody()->write('created');

        $this->worker->respond($response);

        self::assertSame([[
            'respond',
            201,
            'created',
            ['Content-Type' => ['text/plain'], 'Set-Cookie' => ['a=1; Path=/', 'b=2; HttpOnly']],
            true,
        ]], $this->fake->calls);
    }

    public function testAnEmptyBodyEndsTheStream(): void
    {
        $this->worker->respond(new Response(204));

        self::assertSame([['respond', 204, '', [], true]], $this->fake->calls);
    }

    public function testStatusIsSentWithoutTheReasonPhrase(): void
    {
        $this->worker->respond(new Response(418, [], 'tea', '1.1', 'Custom Reason'));

        self::assertSame([['respond', 418, 'tea', [], true]], $this->fake->calls);
    }

    public function testALargeBodyIsStreamedInChunks(): void
    {
        $body = random_bytes(PSR7Worker::STREAM_THRESHOLD) . random_bytes(PSR7Worker::CHUNK_SIZE * 3 + 100);
        $stream = $this->factory->createStream($body);
        $stream->seek(1000); // a body is sent whole, whatever its position

        $this->worker->respond(new Response(200, ['X-A' => ['1', '2']], $stream));

        $calls = $this->fake->calls;
        self::assertCount(intdiv(\strlen($body), PSR7Worker::CHUNK_SIZE) + 1, $calls);
        $sent = '';
        foreach ($calls as $i => [$method, $status, $chunk, $headers, $end]) {
            self::assertSame('respond', $method);
            self::assertSame(200, $status);
            self::assertSame($i === 0 ? ['X-A' => ['1', '2']] : null, $headers, "headers of call $i");
            self::assertSame($i === \count($calls) - 1, $end, "endOfStream of call $i");
            self::assertLessThanOrEqual(PSR7Worker::CHUNK_SIZE, \strlen($chunk));
            $sent .= $chunk;
        }
        self::assertSame(\strlen($body), \strlen($sent));
        self::assertTrue($body === $sent, 'the chunks add up to the body');
    }

    public function testABodyOfUnknownSizeIsStreamed(): void
    {
        $pipe = popen('head -c 200000 /dev/zero', 'r');
        self::assertIsResource($pipe);

        $this->worker->respond(new Response(200, [], Stream::create($pipe)));

        $calls = $this->fake->calls;
        self::assertGreaterThan(1, \count($calls));
        self::assertFalse($calls[0][4]);
        self::assertTrue($calls[\count($calls) - 1][4]);
        self::assertSame(str_repeat("\0", 200000), implode('', array_column($calls, 2)));
    }

    public function testAFileBodyIsHandedToSendFile(): void
    {
        $path = $this->tempFile('file contents');
        $response = new Response(200, ['Content-Type' => 'text/plain'], $this->factory->createStreamFromFile($path));

        $this->worker->respond($response);

        self::assertSame([
            ['sendFile', realpath($path), 200, ['Content-Type' => ['text/plain']]],
        ], $this->fake->calls);
    }

    public function testATempStreamIsNotAFile(): void
    {
        $stream = Stream::create(fopen('php://temp', 'r+'));
        $stream->write('in temp');

        $this->worker->respond(new Response(200, [], $stream));

        self::assertSame([['respond', 200, 'in temp', [], true]], $this->fake->calls);
    }

    public function testAnUploadTempFileIsStreamedNotSent(): void
    {
        // rr deletes upload temp files at the next waitRequest(), maybe before sendFile opens one.
        $tmp = $this->tempFile('uploaded');
        $fake = new FakeWorker(FakeWorker::request(['uploads' => [
            'f' => ['name' => 'f.txt', 'mime' => 'text/plain', 'size' => 8, 'error' => 0, 'tmpName' => $tmp],
        ]]));
        $worker = new PSR7Worker($fake, $this->factory, $this->factory, $this->factory);
        $server = $_SERVER;
        $request = $worker->waitRequest();
        $_SERVER = $server;

        $worker->respond(new Response(200, [], $request->getUploadedFiles()['f']->getStream()));

        self::assertSame([['respond', 200, 'uploaded', [], true]], $fake->calls);
    }

    private function tempFile(string $contents): string
    {
        $path = tempnam(sys_get_temp_dir(), 'rr-test-');
        file_put_contents($path, $contents);
        $this->tempFiles[] = $path;

        return $path;
    }
}
