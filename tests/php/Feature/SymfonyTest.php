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

    public function testKernelTerminateRunsForEveryRequest(): void
    {
        self::$server->request('GET', '/hello/terminate-me');

        $terminated = json_decode(self::$server->request('GET', '/terminated')['body'], true, 512, \JSON_THROW_ON_ERROR);

        self::assertContains('/hello/terminate-me', $terminated);
        self::assertNotContains('/terminated', $terminated, 'terminate runs after the answer is built');
    }
}
