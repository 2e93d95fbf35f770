<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

/** A Symfony 5.4 app (FrameworkBundle) on RR\Symfony\Runtime, selected with APP_RUNTIME. */
final class SymfonyTest extends FrameworkAppTestCase
{
    protected static function startApp(string $var): Server
    {
        return Server::start(\dirname(__DIR__) . '/fixtures/symfony/public/index.php', [
            'RR_TEST_VAR' => $var,
            'APP_ENV' => 'prod',
            'APP_DEBUG' => '0',
            'APP_RUNTIME' => \RR\Symfony\Runtime::class,
        ], systemIni: true, ini: ['rr.address' => '127.0.0.1:0']);
    }

    protected static function streamsChunked(): bool
    {
        return true;
    }

    public function testAContainerServiceKeepsNoRequestStateBetweenRequests(): void
    {
        for ($i = 0; $i < 20; $i++) {
            $response = self::$server->request('GET', "/memo?value=v$i");
            self::assertSame(["v$i"], json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR), "request $i");
        }
    }

    public function testALargeBodyReachesTheAppAsAStreamOnTheSpoolFile(): void
    {
        $body = str_repeat('0123456789abcdef', 4 << 16); // 4 MiB, past http.body_buffer_size
        $response = self::$server->request('PUT', '/body', ['Content-Type: application/octet-stream'], $body);

        self::assertSame(200, $response['status'], $response['body']);
        $got = json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR);
        self::assertSame(md5($body), $got['md5']);
        self::assertStringContainsString('rr-body-', (string) $got['uri']);
    }

    public function testKernelTerminateRunsForEveryRequest(): void
    {
        self::$server->request('GET', '/hello/terminate-me');

        $terminated = json_decode(self::$server->request('GET', '/terminated')['body'], true, 512, \JSON_THROW_ON_ERROR);

        self::assertContains('/hello/terminate-me', $terminated);
        self::assertNotContains('/terminated', $terminated, 'terminate runs after the answer is built');
    }
}
