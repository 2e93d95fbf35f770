<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/** Workers written for spiral/roadrunner-http, run unchanged on rr. */
final class RoadRunnerCompatTest extends TestCase
{
    protected function setUp(): void
    {
        if (!is_file(Server::extension())) {
            self::markTestSkipped('no built extension at ' . Server::extension());
        }
    }

    private static function start(string $fixture): Server
    {
        return Server::start($fixture, ini: ['rr.address' => '127.0.0.1:0']);
    }

    public function testAPsr7WorkerServesAndReportsErrors(): void
    {
        $server = self::start('roadrunner_psr7.php');
        try {
            $ok = $server->request('POST', '/echo?a=1', ['Content-Type: application/x-www-form-urlencoded', 'Cookie: c=v'], 'x=y');
            $failed = $server->request('GET', '/fail');
            $answered = $server->request('GET', '/answer-then-fail');
            $after = $server->request('GET', '/after');

            self::assertSame(200, $ok['status'], $ok['body'] . $server->log());
            self::assertSame([
                'class' => 'Spiral\RoadRunner\Http\PSR7Worker',
                'method' => 'POST',
                'path' => '/echo',
                'query' => ['a' => '1'],
                'parsed' => ['x' => 'y'],
                'cookies' => ['c' => 'v'],
            ], json_decode($ok['body'], true, 512, \JSON_THROW_ON_ERROR));
            // error() while the request is unanswered: a 500, the message in the log.
            self::assertSame(500, $failed['status']);
            self::assertStringNotContainsString('failed in the app', $failed['body']);
            // error() after the answer: the client keeps the app's 500; the message is logged.
            self::assertSame(500, $answered['status']);
            self::assertSame('Something Went Wrong!', $answered['body']);
            self::assertSame(200, $after['status'], 'the worker goes on');
            $log = $server->log();
            self::assertStringContainsString('failed in the app', $log);
            self::assertStringContainsString('reported after the answer', $log);
        } finally {
            self::assertSame(0, $server->stop(), 'SIGTERM ends the RoadRunner loop: waitRequest() gives null');
        }
    }

    public function testAnHttpWorkerGetsRoadRunnersRequestAndStreamsAGenerator(): void
    {
        $server = self::start('roadrunner_http.php');
        try {
            $form = $server->request('POST', '/form', ['Content-Type: application/x-www-form-urlencoded', 'X-Custom: one'], 'k=v&list[]=1');
            $stream = $server->request('GET', '/stream');

            self::assertSame(200, $form['status'], $form['body'] . $server->log());
            $echo = json_decode($form['body'], true, 512, \JSON_THROW_ON_ERROR);
            self::assertSame('POST', $echo['method']);
            self::assertSame('127.0.0.1', $echo['remoteAddr']);
            self::assertSame(['k' => 'v', 'list' => ['1']], $echo['parsed']);
            self::assertSame(['one'], $echo['headers']['X-Custom']);
            self::assertSame("chunk 1\nchunk 2\nchunk 3\nend\n", $stream['body']);
            self::assertArrayNotHasKey('content-length', $stream['headers'], 'streamed');
        } finally {
            $server->stop();
        }
    }

    public function testTheRealPackageWinsWhenItIsInstalled(): void
    {
        // A "real" Spiral\RoadRunner\Worker, autoloaded by a loader registered first (as
        // Composer's is), must be the one used: rr's compatibility class never loads.
        $real = sys_get_temp_dir() . '/rr-real-roadrunner-' . bin2hex(random_bytes(4)) . '.php';
        file_put_contents($real, '<?php namespace Spiral\RoadRunner; final class Worker { public const REAL = true; }');
        try {
            $out = Server::php(sprintf(
                'spl_autoload_register(function ($c) { if ($c === "Spiral\\\\RoadRunner\\\\Worker") { require %s; } });'
                . ' require %s;'
                . ' echo json_encode([defined("Spiral\\\\RoadRunner\\\\Worker::REAL"),'
                . ' (new ReflectionClass("Spiral\\\\RoadRunner\\\\Http\\\\HttpWorker"))->getFileName()]);',
                var_export($real, true),
                var_export(\dirname(__DIR__, 3) . '/php/autoload.php', true),
            ));
        } finally {
            unlink($real);
        }
        [$realUsed, $httpWorkerFile] = json_decode($out, true, 512, \JSON_THROW_ON_ERROR);
        self::assertTrue($realUsed);
        // A class the real packages do not provide still comes from rr's layer.
        self::assertStringEndsWith('/php/compat/roadrunner/Http/HttpWorker.php', $httpWorkerFile);
    }
}
