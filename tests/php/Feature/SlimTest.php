<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

/** A Slim 3 app on RR\Http\PSR7Worker. */
final class SlimTest extends FrameworkAppTestCase
{
    protected static function startApp(string $var): Server
    {
        return Server::start(\dirname(__DIR__) . '/fixtures/slim/worker.php', ['RR_TEST_VAR' => $var], systemIni: true);
    }

    protected static function streamsChunked(): bool
    {
        // PSR7Worker sends a body of unknown size in 64 KiB chunks: 500 short lines fit in one.
        return false;
    }

    public function testTheContainersRequestIsTheCurrentOne(): void
    {
        foreach (['alice', 'bob', 'carol'] as $name) {
            $response = self::$server->request('GET', '/container', ["X-User: $name"]);
            self::assertSame(200, $response['status'], $response['body']);
            self::assertSame(
                ['own' => $name, 'request' => $name, 'environment' => $name],
                json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR),
                "$name's request",
            );
        }
    }
}
