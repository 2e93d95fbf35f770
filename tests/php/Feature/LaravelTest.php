<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

/** A Laravel 8 app on RR\Laravel\Worker. */
final class LaravelTest extends FrameworkAppTestCase
{
    protected static function startApp(string $var): Server
    {
        return Server::start(\dirname(__DIR__) . '/fixtures/laravel/worker.php', ['RR_TEST_VAR' => $var], systemIni: true, ini: ['rr.address' => '127.0.0.1:0']);
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

    public function testConfigurationChangedByARequestStaysInIt(): void
    {
        for ($i = 0; $i < 5; $i++) {
            $response = self::$server->request('GET', "/config?set=v$i");
            self::assertSame(['before' => null], json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR), "request $i");
        }
    }

    public function testTerminatingCallbacksRunAfterTheAnswer(): void
    {
        self::$server->request('GET', '/memo?value=terminate-me');

        $terminated = json_decode(self::$server->request('GET', '/terminated')['body'], true, 512, \JSON_THROW_ON_ERROR);

        self::assertContains('/memo', $terminated);
    }
}
