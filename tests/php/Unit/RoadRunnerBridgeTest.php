<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use PHPUnit\Framework\TestCase;
use RR\RoadRunner\Bridge;
use Spiral\RoadRunner\Http\Request;

/** The RoadRunner compatibility layer's pieces that need no extension. */
final class RoadRunnerBridgeTest extends TestCase
{
    private string $errorLog = '';

    protected function setUp(): void
    {
        $this->errorLog = (string) tempnam(sys_get_temp_dir(), 'rr-bridge-log-');
        ini_set('error_log', $this->errorLog);
    }

    protected function tearDown(): void
    {
        ini_restore('error_log');
        @unlink($this->errorLog);
    }

    public function testErrorFailsAnUnansweredRequestAndOnlyLogsAfterTheAnswer(): void
    {
        $fake = new FakeWorker(FakeWorker::request(), FakeWorker::request(), FakeWorker::request());
        $bridge = new Bridge($fake);

        $bridge->waitRequest();
        $bridge->error('first failed');
        $bridge->waitRequest();
        $bridge->respond(500, 'Something Went Wrong!');
        $bridge->error('reported after the answer');
        $bridge->waitRequest();
        $bridge->respond(200, 'part', null, false);
        $bridge->error('failed while streaming');

        self::assertSame([
            ['error', 'first failed'],
            ['respond', 500, 'Something Went Wrong!', null, true],
            ['respond', 200, 'part', null, false],
            ['error', 'failed while streaming'],
        ], $fake->calls);
        self::assertStringContainsString('reported after the answer', (string) file_get_contents($this->errorLog));
    }

    public function testNoRequestMeansNothingPending(): void
    {
        $fake = new FakeWorker();
        $bridge = new Bridge($fake);

        self::assertNull($bridge->waitRequest());
        $bridge->error('after shutdown');

        self::assertSame([], $fake->calls);
    }

    public function testARoadRunnerRequestCarriesAParsedFormAsJson(): void
    {
        $request = Request::from(FakeWorker::request([
            'method' => 'POST',
            'parsed' => ['a' => '1', 'list' => ['x']],
            'body' => 'a=1&list[]=x',
            'attributes' => ['ipAddress' => '10.0.0.1'],
        ]));

        self::assertTrue($request->parsed);
        self::assertSame(['a' => '1', 'list' => ['x']], $request->getParsedBody());
        self::assertSame('10.0.0.1', $request->getRemoteAddr());

        $raw = Request::from(FakeWorker::request(['body' => '{"j":1}']));
        self::assertFalse($raw->parsed);
        self::assertNull($raw->getParsedBody());
        self::assertSame('{"j":1}', $raw->body);
    }
}
