<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

/**
 * A Symfony 5.4 app (FrameworkBundle, SecurityBundle with a stateful HTTP basic firewall) on
 * RR\Symfony\Runtime, selected with APP_RUNTIME.
 */
class SymfonyTest extends FrameworkAppTestCase
{
    protected static function startApp(string $var): Server
    {
        return Server::start(\dirname(__DIR__) . '/fixtures/symfony/public/index.php', static::env($var) + [
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

    public function testTwoLoggedInUsersAndAnAnonymousClientInterleaveOnOneWorker(): void
    {
        $users = ['alice' => new Browser(self::$server), 'bob' => new Browser(self::$server)];
        foreach ($users as $name => $browser) {
            $login = $browser->request('GET', '/private/me', ['Authorization: Basic ' . base64_encode("$name:$name-pw")]);
            self::assertSame(200, $login['status'], $login['body'] . self::$server->log());
        }
        $pids = [];
        for ($round = 1; $round <= 10; $round++) {
            foreach (['alice', 'bob'] as $name) {
                // The token comes from the session now: no credentials are sent.
                $answer = $users[$name]->request('GET', '/private/me');
                self::assertSame(200, $answer['status'], "$name, round $round: " . $answer['body']);
                $me = json_decode($answer['body'], true, 512, \JSON_THROW_ON_ERROR);
                self::assertSame([$name, true, 1], [$me['user'], $me['mainRequest'], $me['stackDepth']], "$name, round $round");
                $pids[$me['pid']] = true;

                $stranger = self::$server->request('GET', '/me');
                $anonymous = json_decode($stranger['body'], true, 512, \JSON_THROW_ON_ERROR);
                self::assertSame([null, 1, null], [$anonymous['user'], $anonymous['stackDepth'], $anonymous['session']], "a client without a session after $name, round $round");
                self::assertSame(401, self::$server->request('GET', '/private/me')['status'], "after $name, round $round");
                $pids[$anonymous['pid']] = true;
            }
        }
        self::assertCount(1, $pids, 'one worker served every request');
    }

    public function testACookieSetOnAResponseGoesOnlyWithThatResponse(): void
    {
        foreach (['plain', 'stream', 'file'] as $kind) {
            $with = self::$server->request('GET', "/cookie?kind=$kind&set=alice");
            $without = self::$server->request('GET', "/cookie?kind=$kind");

            self::assertSame(['pref=alice; path=/; httponly; samesite=lax'], $with['headers']['set-cookie'] ?? [], $kind);
            self::assertArrayNotHasKey('set-cookie', $without['headers'], $kind);
        }
    }

    public function testALocaleFromARouteStaysInItsRequest(): void
    {
        foreach (['/de/locale' => 'de', '/locale' => 'en', '/fr/locale' => 'fr', '/locale ' => 'en'] as $path => $locale) {
            $answer = json_decode(self::$server->request('GET', trim($path))['body'], true, 512, \JSON_THROW_ON_ERROR);
            self::assertSame(['request' => $locale, 'intl' => $locale], $answer, $path);
        }
    }
}
